"""Behaviour of the Cassandra result backend beyond the conformance suite: TTLs on
every write, concurrent reads, polling latency, size limits, and lightweight
transactions whose outcome is unknown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

# The driver's own classes, imported where the plugin imports them (quietly).
from petiole_cassandra._driver import Cluster, Driver, WriteTimeout, WriteType
from petiole_cassandra.results import WAIT_WINDOW, CassandraBackend, ResultTooLarge
from petiole_cassandra.testing import CassandraNode

from petiole import states
from petiole.backend import ResultRecord
from petiole.testing import unique_name


@pytest.fixture
def backend(cassandra_url: str) -> Iterator[CassandraBackend]:
    backend = CassandraBackend(cassandra_url, {})
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def cql(cassandra: CassandraNode, cassandra_url: str) -> Iterator[Any]:
    """A plain driver session, to look at what the backend wrote."""
    CassandraBackend(cassandra_url, {}).close()  # creates the schema
    cluster = Cluster(contact_points=[(cassandra.address, cassandra.native_port)])
    yield cluster.connect("petiole_test")
    cluster.shutdown()


def done(task_id: str, payload: bytes = b"42") -> ResultRecord:
    return ResultRecord(task_id, states.SUCCESS, payload, date_done=time.time())


def test_every_write_carries_the_ttl(backend: CassandraBackend, cql: Any) -> None:
    task_id, key = unique_name("task"), unique_name("key")
    backend.store(done(task_id), ttl_s=3600)
    backend.set_add(key, "m", ttl_s=3600)
    backend.incr(key, ttl_s=3600)
    backend.claim(key, "me", ttl_s=3600)

    ttls = [
        cql.execute(f"SELECT TTL({col}) FROM {table} WHERE {pk} = %s", (ident,)).one()[0]
        for table, pk, col, ident in [
            ("petiole_results", "task_id", "state", task_id),
            ("petiole_results_sets", "key", "size", key),
            ("petiole_results_counters", "key", "value", key),
            ("petiole_results_claims", "key", "owner", key),
        ]
    ]
    assert all(3590 <= ttl <= 3600 for ttl in ttls), ttls


def test_ttl_none_writes_no_ttl_and_result_ttl_s_option_overrides(
    cassandra: CassandraNode, cql: Any
) -> None:
    kept, short = unique_name("task"), unique_name("task")
    keeping = CassandraBackend(cassandra.url("petiole_test", result_ttl_s=0), {})
    shortening = CassandraBackend(cassandra.url("petiole_test", result_ttl_s=60), {})
    try:
        keeping.store(done(kept), ttl_s=3600)
        shortening.store(done(short), ttl_s=None)
    finally:
        keeping.close()
        shortening.close()

    query = "SELECT TTL(state) FROM petiole_results WHERE task_id = %s"
    assert cql.execute(query, (kept,)).one()[0] is None
    assert 50 <= cql.execute(query, (short,)).one()[0] <= 60


def test_get_many_reads_two_thousand_ids_concurrently(backend: CassandraBackend) -> None:
    ids = [unique_name("task") for _ in range(2000)]
    for start in range(0, len(ids), 500):
        backend._session.call(
            "seed",
            lambda d, chunk=ids[start : start + 500]: d.execute_many(
                backend._store,
                [(i, states.SUCCESS, b"1", "application/json", None, 1.0, "{}", 60) for i in chunk],
                concurrency=64,
            ),
        )

    started = time.monotonic()
    found = backend.get_many([*ids, unique_name("missing")])
    elapsed = time.monotonic() - started

    assert set(found) == set(ids)
    # One round trip after another would take several seconds here.
    assert elapsed < 2.0, elapsed


def test_wait_notices_a_result_within_the_poll_cap(cassandra: CassandraNode) -> None:
    backend = CassandraBackend(cassandra.url("petiole_test", wait_poll_max_s=0.1), {})
    task_id = unique_name("task")
    stored_at: list[float] = []

    def store_later() -> None:
        time.sleep(1.0)
        backend.store(done(task_id), ttl_s=60)
        stored_at.append(time.monotonic())

    storer = threading.Thread(target=store_later)
    try:
        storer.start()
        got = backend.wait([task_id], timeout_s=10)
        returned_at = time.monotonic()
        storer.join()
    finally:
        backend.close()

    assert list(got) == [task_id]
    # The poll interval has grown to its 0.1 s cap by then; one read takes ~1 ms.
    assert returned_at - stored_at[0] < 0.1 + 0.15


def _count_reads(backend: CassandraBackend) -> list[int]:
    """Record how many ids each ``get_many`` call of ``backend`` reads."""
    sizes: list[int] = []
    read = backend.get_many

    def counting(task_ids: Any) -> Any:
        sizes.append(len(task_ids))
        return read(task_ids)

    backend.get_many = counting  # type: ignore[method-assign]
    return sizes


def test_wait_reads_only_the_oldest_pending_window_then_the_rest_on_timeout(
    backend: CassandraBackend,
) -> None:
    ids = [unique_name("task") for _ in range(WAIT_WINDOW + 300)]
    for task_id in ids[WAIT_WINDOW:]:  # the oldest window is never stored: it stays pending
        backend.store(done(task_id), ttl_s=60)
    sizes = _count_reads(backend)

    got = backend.wait(ids, timeout_s=0.5)

    assert set(got) == set(ids[WAIT_WINDOW:])  # read once, on timeout
    assert len(sizes) > 2, sizes
    assert sizes[:-1] == [WAIT_WINDOW] * (len(sizes) - 1)
    assert sizes[-1] == 300


def test_wait_reads_the_next_window_at_once_when_one_is_all_ready(
    backend: CassandraBackend,
) -> None:
    ids = [unique_name("task") for _ in range(2 * WAIT_WINDOW + 200)]
    for task_id in ids:
        backend.store(done(task_id), ttl_s=60)
    sizes = _count_reads(backend)

    started = time.monotonic()
    got = backend.wait(ids, timeout_s=10)

    assert set(got) == set(ids)
    assert sizes == [WAIT_WINDOW, WAIT_WINDOW, 200]
    assert time.monotonic() - started < 2  # no backoff between the windows


def test_result_over_max_result_bytes_is_refused_before_it_is_sent(
    backend: CassandraBackend,
) -> None:
    task_id = unique_name("task")
    size = backend.options.max_result_bytes + 1

    with pytest.raises(ResultTooLarge) as info:
        backend.store(done(task_id, b"x" * size), ttl_s=60)

    assert info.value.size_bytes == size  # the payload, as for every backend
    assert info.value.limit_bytes == backend.options.max_result_bytes
    assert "max_mutation_size" in str(info.value)
    assert backend.get(task_id) is None


def test_result_the_server_refuses_for_its_size_raises_result_too_large(
    cassandra: CassandraNode,
) -> None:
    backend = CassandraBackend(cassandra.url("petiole_test", max_result_bytes=64 << 20), {})
    task_id = unique_name("task")
    try:
        with pytest.raises(ResultTooLarge, match="Rejected an oversized mutation"):
            backend.store(done(task_id, b"x" * (17 << 20)), ttl_s=60)
        assert backend.get(task_id) is None
        backend.store(done(task_id), ttl_s=60)  # the connection is still fine
        assert backend.get(task_id) is not None
    finally:
        backend.close()


class LostReply:
    """Wraps a driver so that the first run of one statement is applied on the server
    but reported as a timed-out lightweight transaction (outcome unknown)."""

    def __init__(self, driver: Driver, statement: object) -> None:
        self.driver = driver
        self.statement = statement
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.driver, name)

    def execute(self, statement: Any, params: Any = ()) -> Any:
        result = self.driver.execute(statement, params)
        if statement is self.statement and not self.failed:
            self.failed = True
            raise WriteTimeout("lost", write_type=WriteType.CAS)
        return result


def lose_first_reply(backend: CassandraBackend, statement: object) -> LostReply:
    wrapper = LostReply(backend._session.driver, statement)
    backend._session.driver = wrapper  # type: ignore[assignment]
    return wrapper


def test_incr_whose_reply_was_lost_is_counted_once(backend: CassandraBackend) -> None:
    key = unique_name("key")
    assert backend.incr(key, 5, ttl_s=60) == 5
    wrapper = lose_first_reply(backend, backend._incr)

    assert backend.incr(key, 1, ttl_s=60) == 6
    assert wrapper.failed
    assert backend.incr(key, 1, ttl_s=60) == 7


def test_set_add_whose_reply_was_lost_is_counted_once(backend: CassandraBackend) -> None:
    key = unique_name("key")
    backend.set_add(key, "a", ttl_s=60)
    wrapper = lose_first_reply(backend, backend._set_add)

    assert backend.set_add(key, "b", ttl_s=60) == 2
    assert wrapper.failed
    assert backend.set_add(key, "c", ttl_s=60) == 3


def test_claim_whose_reply_was_lost_still_sees_its_own_win(backend: CassandraBackend) -> None:
    key = unique_name("key")
    wrapper = lose_first_reply(backend, backend._claim)

    assert backend.claim(key, "first", ttl_s=60) == "first"
    assert wrapper.failed
    assert backend.claim(key, "second", ttl_s=60) == "first"


def test_a_redelivered_chord_member_is_counted_once_and_one_member_claims(
    backend: CassandraBackend,
) -> None:
    key = unique_name("chord")
    sizes = [backend.set_add(key, f"m{i}", ttl_s=60) for i in range(5)]
    assert backend.set_add(key, "m2", ttl_s=60) == 5  # redelivered: not counted again
    assert sizes == [1, 2, 3, 4, 5]
    assert backend.claim(f"{key}:fired", "m4", ttl_s=60) == "m4"
    assert backend.claim(f"{key}:fired", "m2", ttl_s=60) == "m4"
