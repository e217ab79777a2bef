"""The result backend conformance suite: storing and reading results.

Coordination (sets, counters, claims, marks, leases) has its own suite,
:class:`~petiole.testing.coordination_suite.CoordinationSuite`, which a backend
that implements :class:`~petiole.backend.Coordination` runs as well.

A result backend plugin subclasses :class:`ResultBackendSuite` in its own tests
and provides a ``backend`` fixture that yields a fresh, connected backend (and
closes it afterwards)::

    class TestRedisBackend(ResultBackendSuite):
        @pytest.fixture
        def backend(self) -> Iterator[ResultBackend]:
            b = create_backend("redis://localhost:6379/15", {})
            yield b
            b.close()

Every test uses fresh unique task ids and keys, so a shared server needs no
flush between runs; the suite forgets what it stored afterwards. Class
attributes below tune timing and load for slow or remote servers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from typing import Any, ClassVar, cast

import pytest

from petiole import states
from petiole.backend import (
    BackendCapabilities,
    PushesToSender,
    RepliesToSender,
    ResultBackend,
    ResultRecord,
    StoresInBatches,
)
from petiole.capabilities import offers
from petiole.errors import ResultBackendError
from petiole.result_signing import sign_record, verify_record
from petiole.stages import HmacSha256Signer
from petiole.testing._helpers import (
    Background,
    call_with_timeout,
    run_concurrently,
    unique_name,
    wait_until,
)

_ALL_BYTES = bytes(range(256))
# A wait timed by the caller's own clock may end this much early (timer rounding).
_CLOCK_JITTER_S = 0.05
_STORED_STATES = sorted(states.ALL_STATES - {states.PENDING})
_UNREADY_STORED_STATES = sorted(states.UNREADY_STATES - {states.PENDING})


class Names:
    """Unique task ids for one test; the suite forgets them afterwards."""

    def __init__(self) -> None:
        self.task_ids: list[str] = []

    def task_id(self) -> str:
        name = unique_name("petiole-test-task")
        self.task_ids.append(name)
        return name


class ResultBackendSuite:
    """Conformance tests for a :class:`~petiole.backend.ResultBackend`.

    Subclasses provide a ``backend`` fixture and may override these attributes.
    """

    #: The short ttl of expiry tests; stores with whole-second expiry keep 1.0 or more.
    ttl_s: ClassVar[float] = 1.0
    #: How late past its ttl a record, set or counter may still be visible.
    ttl_precision_s: ClassVar[float] = 1.0
    #: How soon ``wait`` must notice a record stored by someone else (a polling
    #: backend's poll interval plus a round trip), and the slack around timeouts.
    wait_precision_s: ClassVar[float] = 1.0
    #: Stored ``date_done`` may be rounded by this much (stores keeping milliseconds set 1e-3).
    timestamp_precision_s: ClassVar[float] = 1e-6
    #: Load of the concurrency tests: threads, and operations per thread.
    concurrency_threads: ClassVar[int] = 8
    concurrency_per_thread: ClassVar[int] = 50
    #: Upper bound on any one concurrency test, so a deadlock fails instead of hanging;
    #: also how long the test of ``many_ids`` gives ``wait``.
    concurrency_timeout_s: ClassVar[float] = 60.0
    #: Ids of the test that waits for many at once: half stored before the wait,
    #: half while it waits.
    many_ids: ClassVar[int] = 1000

    # -- fixtures and helpers ------------------------------------------------

    @pytest.fixture
    def names(self, backend: ResultBackend) -> Iterator[Names]:
        made = Names()
        yield made
        if made.task_ids:
            backend.forget(made.task_ids)

    @pytest.fixture(autouse=True)
    def _address_records(self, backend: ResultBackend) -> None:
        """A backend that delivers records to their sender (``rpc://``) gets them
        addressed to itself, as a worker addresses a task's records to its sender."""
        self._reply_to = backend.reply_address() if isinstance(backend, RepliesToSender) else None

    def record(self, task_id: str, state: str = states.SUCCESS, **fields: Any) -> ResultRecord:
        if state in states.READY_STATES:
            fields.setdefault("date_done", time.time())
        fields.setdefault("reply_to", getattr(self, "_reply_to", None))
        return ResultRecord(task_id=task_id, state=state, **fields)

    def require_stored(self, backend: ResultBackend) -> None:
        if backend.capabilities.replies_to_sender:
            pytest.skip(
                "capability replies_to_sender is True: records are delivered to the "
                "sender's memory, not stored, so no ttl applies"
            )

    def assert_same_record(self, got: ResultRecord | None, expected: ResultRecord) -> None:
        assert got is not None, f"no record for {expected.task_id!r}"
        assert got.task_id == expected.task_id
        assert got.state == expected.state
        assert got.payload == expected.payload
        assert type(got.payload) is bytes
        assert got.content_type == expected.content_type
        assert got.traceback == expected.traceback
        if expected.date_done is None:
            assert got.date_done is None
        else:
            assert got.date_done == pytest.approx(
                expected.date_done, abs=self.timestamp_precision_s
            )
        assert dict(got.meta) == dict(expected.meta)

    def wait_while_storing(
        self,
        backend: ResultBackend,
        task_ids: list[str],
        records: list[ResultRecord],
        *,
        timeout_s: float,
    ) -> dict[str, ResultRecord]:
        """``backend.wait(task_ids)`` while another thread stores ``records``
        (released as the wait starts: see :class:`Background`)."""

        def store_all() -> None:
            for record in records:
                backend.store(record, ttl_s=None)

        storer = Background(store_all)
        storer.release()
        got = backend.wait(task_ids, timeout_s=timeout_s)
        storer.join()
        return got

    # -- the contract ----------------------------------------------------------

    def test_backend_satisfies_protocol(self, backend: ResultBackend) -> None:
        assert isinstance(backend, ResultBackend)
        assert isinstance(backend.capabilities, BackendCapabilities)

    @pytest.mark.parametrize("state", _STORED_STATES)
    def test_store_and_get_round_trip_every_field(
        self, backend: ResultBackend, names: Names, state: str
    ) -> None:
        record = self.record(
            names.task_id(),
            state,
            payload=b'{"value":[1,2,3]}',
            content_type="application/x-petiole-test",
            traceback='Traceback (most recent call last):\n  File "t.py"\nValueError: naïve ✓',
            date_done=1_700_000_000.123456,
            meta={
                "task": "app.tasks.add",
                "worker": "host-1@pid-42",
                "children": [["child-1", None]],
                "group_id": None,
                "retries": 3,
                "ratio": 0.25,
                "flags": {"eager": False, "nested": {"deep": ["ü", 1]}},
            },
        )
        backend.store(record, ttl_s=None)

        self.assert_same_record(backend.get(record.task_id), record)

    def test_a_signed_record_still_verifies_after_the_round_trip(
        self, backend: ResultBackend, names: Names
    ) -> None:
        """``sign_results`` keeps the signature in ``meta`` and signs every field but
        ``date_done``: a store that keeps them as given keeps results verifiable."""
        signer = HmacSha256Signer(b"backend-suite-signing-key-0123456789")
        record = self.record(
            names.task_id(),
            states.SUCCESS,
            payload=b'["signed", 1]',
            meta={"task": "app.tasks.add", "children": [["child-1", None]]},
        )
        backend.store(sign_record(record, signer), ttl_s=None)

        got = backend.get(record.task_id)
        assert got is not None
        verify_record(got, signer, required=True)

    def test_store_keeps_empty_and_none_fields(self, backend: ResultBackend, names: Names) -> None:
        record = self.record(names.task_id(), states.STARTED)
        backend.store(record, ttl_s=None)

        self.assert_same_record(backend.get(record.task_id), record)

    def test_meta_that_is_not_json_safe_is_refused_storing_nothing(
        self, backend: ResultBackend, names: Names
    ) -> None:
        task_id = names.task_id()
        record = self.record(task_id, states.SUCCESS, meta={"when": object()})

        with pytest.raises(ResultBackendError):
            backend.store(record, ttl_s=None)
        assert backend.get(task_id) is None

    def test_get_unknown_id_returns_none(self, backend: ResultBackend, names: Names) -> None:
        assert backend.get(names.task_id()) is None

    def test_store_overwrites_earlier_record(self, backend: ResultBackend, names: Names) -> None:
        task_id = names.task_id()
        backend.store(self.record(task_id, states.STARTED, meta={"worker": "a"}), ttl_s=None)
        final = self.record(task_id, states.SUCCESS, payload=b"42")
        backend.store(final, ttl_s=None)

        self.assert_same_record(backend.get(task_id), final)

    def test_storing_the_same_record_twice_leaves_one_correct_record(
        self, backend: ResultBackend, names: Names
    ) -> None:
        record = self.record(names.task_id(), payload=b"42")
        backend.store(record, ttl_s=None)
        backend.store(record, ttl_s=None)

        self.assert_same_record(backend.get(record.task_id), record)
        assert list(backend.get_many([record.task_id])) == [record.task_id]

    def test_get_many_returns_only_known_ids(self, backend: ResultBackend, names: Names) -> None:
        known = [self.record(names.task_id(), payload=f"{i}".encode()) for i in range(3)]
        for record in known:
            backend.store(record, ttl_s=None)
        unknown = names.task_id()

        got = backend.get_many([known[0].task_id, unknown, known[1].task_id, known[2].task_id])

        assert set(got) == {r.task_id for r in known}
        for record in known:
            self.assert_same_record(got[record.task_id], record)
        assert backend.get_many([]) == {}

    def test_wait_returns_at_once_for_ready_records(
        self, backend: ResultBackend, names: Names
    ) -> None:
        ready = [
            self.record(names.task_id(), state)
            for state in (states.SUCCESS, states.FAILURE, states.REVOKED)
        ]
        for record in ready:
            backend.store(record, ttl_s=None)
        ids = [r.task_id for r in ready]

        start = time.monotonic()
        got = call_with_timeout(
            lambda: backend.wait(ids, timeout_s=None),
            timeout_s=self.wait_precision_s + 5.0,
            what="wait(timeout_s=None) on ready records",
        )

        assert time.monotonic() - start <= self.wait_precision_s
        assert set(got) == set(ids)
        for record in ready:
            self.assert_same_record(got[record.task_id], record)

    def test_wait_returns_record_stored_by_another_thread(
        self, backend: ResultBackend, names: Names
    ) -> None:
        record = self.record(names.task_id(), payload=b"done")
        storer = Background(lambda: backend.store(record, ttl_s=None))

        storer.release()
        got = backend.wait([record.task_id], timeout_s=10.0 + self.wait_precision_s)
        returned_at = time.monotonic()
        storer.join()

        assert list(got) == [record.task_id]
        self.assert_same_record(got[record.task_id], record)
        assert storer.done_at is not None
        assert returned_at - storer.done_at <= self.wait_precision_s

    def test_wait_returns_ready_subset_on_timeout_without_raising(
        self, backend: ResultBackend, names: Names
    ) -> None:
        ready = self.record(names.task_id())
        backend.store(ready, ttl_s=None)
        missing = names.task_id()
        timeout_s = 0.5

        start = time.monotonic()
        got = backend.wait([ready.task_id, missing], timeout_s=timeout_s)
        elapsed = time.monotonic() - start

        assert list(got) == [ready.task_id]
        assert timeout_s - _CLOCK_JITTER_S <= elapsed <= timeout_s + self.wait_precision_s

    def test_wait_ignores_unready_states_until_ready(
        self, backend: ResultBackend, names: Names
    ) -> None:
        unready = [self.record(names.task_id(), state) for state in _UNREADY_STORED_STATES]
        for record in unready:
            backend.store(record, ttl_s=None)
        ids = [r.task_id for r in unready]
        assert backend.wait(ids, timeout_s=0.3) == {}

        done = [self.record(task_id, states.SUCCESS, payload=b"ok") for task_id in ids]

        got = self.wait_while_storing(backend, ids, done, timeout_s=10.0 + self.wait_precision_s)

        assert set(got) == set(ids)
        for record in done:
            self.assert_same_record(got[record.task_id], record)

    def test_wait_for_many_ids_returns_every_record_including_those_stored_meanwhile(
        self, backend: ResultBackend, names: Names
    ) -> None:
        records = [
            self.record(names.task_id(), payload=f"{i}".encode()) for i in range(self.many_ids)
        ]
        half = len(records) // 2
        for record in records[:half]:
            backend.store(record, ttl_s=None)

        got = self.wait_while_storing(
            backend,
            [r.task_id for r in records],
            records[half:],
            timeout_s=self.concurrency_timeout_s,
        )

        missing = {r.task_id for r in records} - set(got)
        stored_meanwhile = {r.task_id for r in records[half:]}
        assert not missing, (
            f"wait returned without {len(missing)} of {len(records)} records "
            f"({len(missing & stored_meanwhile)} of them stored while it waited)"
        )
        assert len(got) == len(records)
        for record in records:
            assert got[record.task_id].payload == record.payload

    def test_forget_deletes_records_and_ignores_unknown_ids(
        self, backend: ResultBackend, names: Names
    ) -> None:
        gone, kept = self.record(names.task_id()), self.record(names.task_id())
        backend.store(gone, ttl_s=None)
        backend.store(kept, ttl_s=None)

        backend.forget([gone.task_id, names.task_id()])

        assert backend.get(gone.task_id) is None
        self.assert_same_record(backend.get(kept.task_id), kept)

    def test_record_expires_after_its_ttl(self, backend: ResultBackend, names: Names) -> None:
        self.require_stored(backend)
        record = self.record(names.task_id())
        backend.store(record, ttl_s=self.ttl_s)
        self.assert_same_record(backend.get(record.task_id), record)

        assert wait_until(
            lambda: backend.get(record.task_id) is None,
            timeout_s=self.ttl_s + self.ttl_precision_s,
        ), f"record still there {self.ttl_s + self.ttl_precision_s} s after a {self.ttl_s} s ttl"
        assert backend.get_many([record.task_id]) == {}

    def test_ttl_none_keeps_records_even_when_replacing_one_with_a_ttl(
        self, backend: ResultBackend, names: Names
    ) -> None:
        self.require_stored(backend)
        expiring = self.record(names.task_id())
        kept = self.record(names.task_id())
        replaced = self.record(names.task_id())
        backend.store(expiring, ttl_s=self.ttl_s)
        backend.store(kept, ttl_s=None)
        backend.store(replaced, ttl_s=self.ttl_s)
        backend.store(replaced, ttl_s=None)

        assert wait_until(
            lambda: backend.get(expiring.task_id) is None,
            timeout_s=self.ttl_s + self.ttl_precision_s,
        ), "the record with a ttl never expired"
        self.assert_same_record(backend.get(kept.task_id), kept)
        self.assert_same_record(backend.get(replaced.task_id), replaced)

    def test_payload_with_every_byte_value_round_trips(
        self, backend: ResultBackend, names: Names
    ) -> None:
        payload = _ALL_BYTES * 16 + b"\x00"
        limit = backend.capabilities.max_result_bytes
        record = self.record(names.task_id(), payload=payload[:limit] if limit else payload)
        backend.store(record, ttl_s=None)

        self.assert_same_record(backend.get(record.task_id), record)

    def test_store_over_max_result_bytes_raises_result_backend_error(
        self, backend: ResultBackend, names: Names
    ) -> None:
        limit = backend.capabilities.max_result_bytes
        if limit is None:
            pytest.skip("capability max_result_bytes is None: the backend has no size limit")
        record = self.record(names.task_id(), payload=b"x" * (limit + 1))

        with pytest.raises(ResultBackendError):
            backend.store(record, ttl_s=None)
        assert backend.get(record.task_id) is None

    def test_store_many_stores_each_record_as_store_would(
        self, backend: ResultBackend, names: Names
    ) -> None:
        if not offers(backend, StoresInBatches):
            pytest.skip("the backend does not offer StoresInBatches: one record per store")
        batch = cast(StoresInBatches, backend)
        records = [self.record(names.task_id(), payload=f"{i}".encode()) for i in range(50)]
        earlier = self.record(records[0].task_id, state=states.STARTED)
        backend.store(earlier, ttl_s=None)

        batch.store_many(records, ttl_s=None)
        batch.store_many([], ttl_s=None)

        found = backend.get_many([r.task_id for r in records])
        assert set(found) == {r.task_id for r in records}
        for record in records:  # the first replaced the STARTED record stored before
            self.assert_same_record(found[record.task_id], record)

    def test_store_many_gives_each_record_the_ttl(
        self, backend: ResultBackend, names: Names
    ) -> None:
        if not offers(backend, StoresInBatches):
            pytest.skip("the backend does not offer StoresInBatches: one record per store")
        self.require_stored(backend)
        records = [self.record(names.task_id()) for _ in range(3)]

        cast(StoresInBatches, backend).store_many(records, ttl_s=self.ttl_s)

        assert wait_until(
            lambda: backend.get_many([r.task_id for r in records]) == {},
            timeout_s=self.ttl_s + self.ttl_precision_s,
        ), "records stored together with a ttl never expired"

    def listening_after_a_wait(self, backend: ResultBackend, names: Names, task_id: str) -> str:
        """This thread's address for ``task_id``'s record, of a :class:`PushesToSender`
        backend, after a first wait (a backend may start listening only then)."""
        if not offers(backend, PushesToSender):
            pytest.skip("the backend does not offer PushesToSender: waits read the store")
        pushing = cast(PushesToSender, backend)
        backend.wait([names.task_id()], timeout_s=0.01)
        address = pushing.listening_address(task_id)
        assert isinstance(address, str), "no listening address after a wait on this thread"
        return address

    def test_a_record_pushed_to_its_waiting_sender_is_returned_and_stored(
        self, backend: ResultBackend, names: Names
    ) -> None:
        task_id = names.task_id()
        address = self.listening_after_a_wait(backend, names, task_id)
        record = self.record(task_id, payload=b"pushed", reply_to=address)
        started = self.record(record.task_id, state=states.STARTED, reply_to=address)

        def store_both() -> None:
            for each in (started, record):
                backend.store(each, ttl_s=None)

        storer = Background(store_both)

        storer.release()
        got = backend.wait([record.task_id], timeout_s=10.0 + self.wait_precision_s)
        storer.join()

        self.assert_same_record(got.get(record.task_id), record)
        self.assert_same_record(backend.get(record.task_id), record)  # stored all the same

    def test_records_pushed_while_nobody_waits_leave_later_waits_correct(
        self, backend: ResultBackend, names: Names
    ) -> None:
        """A sender that waits for few of its tasks: the pushes of the others
        (here 300 records addressed to it, stored one by one and again through
        ``store_many`` where offered) neither block it nor answer for another task."""
        first = names.task_id()
        address = self.listening_after_a_wait(backend, names, first)
        unwaited = [self.record(first, payload=b"x" * 100, reply_to=address)]
        unwaited += [self.record(names.task_id(), reply_to=address) for _ in range(299)]
        for record in unwaited:
            backend.store(record, ttl_s=None)
        if offers(backend, StoresInBatches):
            cast(StoresInBatches, backend).store_many(unwaited, ttl_s=None)
        later = self.record(names.task_id(), payload=b"later", reply_to=address)

        got = self.wait_while_storing(backend, [later.task_id], [later], timeout_s=10.0)

        assert list(got) == [later.task_id]
        self.assert_same_record(got[later.task_id], later)
        found = backend.get_many([unwaited[0].task_id, unwaited[-1].task_id])
        self.assert_same_record(found.get(unwaited[0].task_id), unwaited[0])
        self.assert_same_record(found.get(unwaited[-1].task_id), unwaited[-1])

    @pytest.mark.parametrize("stored", ["before the wait", "during the wait"])
    def test_the_addressed_tasks_record_stored_without_a_push_is_found(
        self, backend: ResultBackend, names: Names, stored: str
    ) -> None:
        """A store may count on the push for the task a thread addressed, but a
        record of that task stored without one (``revoke()``'s: the revoker knows
        no ``reply_to``) is found all the same."""
        task_id = names.task_id()
        self.listening_after_a_wait(backend, names, task_id)
        record = self.record(task_id, state=states.REVOKED, payload=b"revoked")
        if stored == "before the wait":
            backend.store(record, ttl_s=None)
            got = backend.wait([task_id], timeout_s=10.0 + self.wait_precision_s)
        else:
            got = self.wait_while_storing(backend, [task_id], [record], timeout_s=10.0)

        self.assert_same_record(got.get(task_id), record)

    def test_a_wait_with_no_time_for_the_addressed_tasks_push_reads_the_store(
        self, backend: ResultBackend, names: Names
    ) -> None:
        task_id = names.task_id()
        self.listening_after_a_wait(backend, names, task_id)
        record = self.record(task_id, payload=b"stored")
        backend.store(record, ttl_s=None)

        got = backend.wait([task_id], timeout_s=0)

        self.assert_same_record(got.get(task_id), record)

    def test_a_record_addressed_elsewhere_is_stored_and_read(
        self, backend: ResultBackend, names: Names
    ) -> None:
        """A ``reply_to`` that is not one of this backend's addresses (another
        backend's, a stale one) is not an error: the record is stored."""
        if not offers(backend, PushesToSender):
            pytest.skip("the backend does not offer PushesToSender: waits read the store")
        record = self.record(names.task_id(), reply_to="elsewhere:not-an-address")

        got = self.wait_while_storing(backend, [record.task_id], [record], timeout_s=10.0)

        self.assert_same_record(got.get(record.task_id), record)

    def test_concurrent_stores_of_distinct_ids_are_all_kept(
        self, backend: ResultBackend, names: Names
    ) -> None:
        per_thread = [
            [self.record(names.task_id(), payload=f"{w}-{i}".encode()) for i in range(10)]
            for w in range(self.concurrency_threads)
        ]

        def store_all(records: list[ResultRecord]) -> None:
            for record in records:
                backend.store(record, ttl_s=None)

        run_concurrently(
            [partial(store_all, records) for records in per_thread],
            timeout_s=self.concurrency_timeout_s,
        )

        every = [r for records in per_thread for r in records]
        got = backend.get_many([r.task_id for r in every])
        assert set(got) == {r.task_id for r in every}
        for record in every:
            assert got[record.task_id].payload == record.payload

    def test_close_twice_after_use_is_harmless(self, backend: ResultBackend) -> None:
        record = self.record(unique_name("petiole-test-task"))
        backend.store(record, ttl_s=None)
        self.assert_same_record(backend.get(record.task_id), record)
        backend.forget([record.task_id])

        backend.close()
        backend.close()
