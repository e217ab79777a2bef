"""The Redis result backend.

A record is one string key, ``<prefix>:result:<task id>``, written with
``SET ... PX <ttl>`` (or without ``PX`` to keep it, which also clears an
earlier ttl), so Redis expires it. Its value is::

    b"\\x01" | 4-byte big-endian header length | header JSON | payload bytes

where the header is ``[state, content_type, traceback, date_done, meta]``; the
payload is stored as is, never base64'd.

**wait is pushed, not polled.** A waiter reads the records it waits for on a
connection with RESP3 client tracking (:mod:`petiole_redis._tracking`): the
server remembers the keys it read, missing ones too, and pushes their names when
anything next writes them; the waiter reads those again. A record stored before
the wait is found by its first read, one stored after wakes it. So ``store`` is
one ``SET`` for every record, whoever waits (the sender, another process, no
one), and waiting for one id or for thousands is the same: one ``MGET`` (in
chunks of 1,000), then one more per batch of names pushed. Nothing is
subscribed per wait; no thread hands a record to another. A server that
refuses tracking makes waits poll (said once, at WARNING).

**Pushed to the sender.** Each thread's tracking connection is also subscribed
to a channel of its own (:meth:`RedisBackend.listening_address`, once it
connected), which the first task it sends after each wait carries as its
``reply_to`` (:class:`~petiole.backend.PushesToSender`; see
:meth:`~petiole_redis._tracking.TrackingClient.listening_channel` for why only
that one). A ready record addressed there is
stored with ``SET`` then ``PUBLISH`` as ``4-byte key length | key | value``, in
one round trip; the waiter, woken by both, takes the value from the push rather
than reading the key again. The sender's wait for that task (alone) counts on
the push and reads nothing unless none has come after ``_PUSH_GRACE_S``; a
record stored without a push (``revoke()``'s) is found then. The record is
stored all the same: a waiter that missed the push (its connection was
replaced, it is another process) reads it.
A server that refuses the channel (an ACL user allowed none) gets no push; the
record is stored, and one WARNING says so.

**A wait ends.** ``timeout_s`` bounds the whole wait, outages included: when
the server is unreachable until the deadline, ``wait`` raises
:class:`~petiole.errors.ResultTimeout` saying so (rather than returning as if
the task were merely slow); with no timeout, an outage longer than
``reconnect_timeout_s`` raises :class:`~petiole.errors.ResultBackendError`.
When the server comes back without its data (see :mod:`petiole_redis._client`),
the waits that were running raise :class:`~petiole.errors.ResultsLost`: the
results they wait for, or the tasks that would store them, are gone.

**It coordinates too** (:class:`~petiole.backend.Coordination`). Sets
(``SADD`` + ``SCARD`` + ``PEXPIRE`` in one ``MULTI``), counters (incr.lua) and
claims (``SET NX`` + ``GET`` in one ``MULTI``) are atomic on the server; marks
are plain ``SET ... PX`` on the claim keys, read with ``MGET``. A lease is one
key holding its owner, expired by Redis's clock: lease_acquire.lua (``SET PX``
unless another owner holds it), lease_renew.lua (compare, then ``PEXPIRE``) and
lease_release.lua (compare, then ``DEL``). A release retried after its reply
was lost answers False although it released.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from petiole.backend import BackendCapabilities, ResultBackend, ResultRecord
from petiole.errors import ResultBackendError, ResultsLost, ResultTimeout
from petiole.ids import random_hex
from petiole.record_codec import decode_record, encode_record
from petiole_redis._client import Client, Closed, Connector, FastClient, Script, StillDown, command
from petiole_redis._keys import Keys
from petiole_redis._options import parse_url
from petiole_redis._tracking import TrackingClient

logger = logging.getLogger("petiole_redis")

COMPONENT = "redis result backend"

T = TypeVar("T")

# Ids per MGET; several MGETs still go in one pipelined round trip.
_MGET_CHUNK = 1000
# How long a wait for the task its thread addressed last counts on the push
# before it reads the store: a record stored without one (revoke()'s, a push the
# server refused) is found this much later at most.
_PUSH_GRACE_S = 0.05
_INCR = Script("incr")
_LEASE_ACQUIRE = Script("lease_acquire")
_LEASE_RENEW = Script("lease_renew")
_LEASE_RELEASE = Script("lease_release")


class RedisBackend:
    """A :class:`~petiole.backend.ResultBackend` and :class:`~petiole.backend.Coordination`
    on Redis (see the module docstring)."""

    capabilities = BackendCapabilities(push_wait=True, max_result_bytes=None)

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        target = parse_url(url, options, component=COMPONENT)
        self.options = target.options
        self.keys = Keys(target.options.key_prefix)
        self._conn = Connector(target, component=COMPONENT, error_type=ResultBackendError)
        self._conn.connect()
        self._reply_prefix = f"{self.keys.prefix}:reply:"
        self._tracked = TrackingClient(self._conn, channel_prefix=self._reply_prefix)
        self._push_refused = False  # said once: see _push_failed()
        # A wait blocks in slices, returning before the socket's read timeout.
        self._max_block_s = min(5.0, target.options.socket_timeout_s / 2)
        # An incr token must outlive every retry of its call (see incr.lua).
        self._incr_token_ms = round((target.options.reconnect_timeout_s + 60) * 1000)

    def __repr__(self) -> str:
        return f"RedisBackend({self._conn.target.masked_url!r})"

    @property
    def data_generation(self) -> int:
        """0, plus one each time the server was found to have lost its data
        (see :mod:`petiole_redis._client`)."""
        return self._conn.data_generation

    @property
    def data_lost_at(self) -> float | None:
        """When (``time.time()``) the server was last found to have lost its data; None if never."""
        return self._conn.data_lost_at

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        """Replace the record; push it to its sender when it is ready and the
        sender listens (see "Pushed to the sender" in the module docstring).

        Raises :class:`~petiole.errors.ResultBackendError` if ``record.meta`` is
        not JSON-safe, or if the server refuses the value (larger than its
        ``proto-max-bulk-len``, 512 MB by default).
        """
        self._store([record], ttl_s, f"store the result of task {record.task_id!r}")

    def store_many(self, records: Sequence[ResultRecord], *, ttl_s: float | None) -> None:
        """:meth:`store` each, pipelined in one round trip
        (:class:`~petiole.backend.StoresInBatches`)."""
        if records:
            self._store(records, ttl_s, f"store the results of {len(records)} tasks")

    def _store(self, records: Sequence[ResultRecord], ttl_s: float | None, what: str) -> None:
        calls: list[tuple[Any, ...]] = []
        for record in records:
            value = _encode(record)
            key = self.keys.result(record.task_id)
            if ttl_s is None:
                calls.append(("SET", key, value))  # also clears an earlier ttl
            else:
                calls.append(("SET", key, value, "PX", max(1, round(ttl_s * 1000))))
            reply_to = record.reply_to
            if reply_to and record.ready and reply_to.startswith(self._reply_prefix):
                name = key.encode()
                calls.append(("PUBLISH", reply_to, len(name).to_bytes(4, "big") + name + value))
        if len(calls) == 1:
            self._call_fast(what, lambda c: command(c, *calls[0]))
            return

        def run(client: FastClient) -> None:
            for call, reply in zip(calls, client.execute_pipeline(calls), strict=True):
                if isinstance(reply, Exception):
                    if call[0] != "PUBLISH":
                        raise reply
                    self._push_failed(reply)

        self._call_fast(what, run)

    def _push_failed(self, exc: Exception) -> None:
        """A push refused (an ACL user without channels): the record is stored,
        and its waiter reads it once woken, as without a push. Said once."""
        if not self._push_refused:
            self._push_refused = True
            logger.warning(
                "%s: the server refuses PUBLISH (%s); results are stored, and their "
                "senders read them once woken instead of receiving them (grant the ACL "
                "user the channels '&%s*')",
                self._conn.describe(),
                exc,
                self._reply_prefix,
            )

    def listening_address(self, task_id: str) -> str | None:
        """The channel where this thread receives the record of ``task_id``, about
        to be sent (:class:`~petiole.backend.PushesToSender`): its tracking
        connection's, once it has one (from its first wait), for the first send
        after each wait; otherwise None."""
        return self._tracked.listening_channel(self.keys.result(task_id).encode())

    def get(self, task_id: str) -> ResultRecord | None:
        return self.get_many([task_id]).get(task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """Unexpired records of those ids, in one round trip (pipelined ``MGET``s)."""
        try:
            return self._read(list(dict.fromkeys(task_ids)), until=None)
        except Closed:
            raise ResultBackendError(f"{self._conn.describe()} is closed (read results)") from None

    def _read(self, ids: list[str], *, until: float | None) -> dict[str, ResultRecord]:
        """:meth:`get_many` of distinct ids; raises :class:`StillDown` when an outage
        lasts past ``until`` and :class:`Closed` when the backend is closed."""
        if not ids:
            return {}
        keys = [self.keys.result(t) for t in ids]

        def run(client: FastClient) -> list[Any]:
            if len(keys) <= _MGET_CHUNK:
                return list(command(client, "MGET", *keys))
            chunks = client.execute_pipeline(
                [("MGET", *keys[at : at + _MGET_CHUNK]) for at in range(0, len(keys), _MGET_CHUNK)]
            )
            for chunk in chunks:
                if isinstance(chunk, Exception):
                    raise chunk
            return [value for chunk in chunks for value in chunk]

        values = self._conn.call_fast("read results", run, until=until)
        return {t: _decode(t, v) for t, v in zip(ids, values, strict=True) if v is not None}

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        """Block until every id has a ready record, or ``timeout_s`` passes (see
        the module docstring: woken by the server, not polled). Returns early,
        with what it found, if the backend is closed meanwhile.

        Raises :class:`~petiole.errors.ResultTimeout` when the server was
        unreachable until the deadline, and :class:`~petiole.errors.ResultsLost`
        when it came back without its data meanwhile (see "A wait ends")."""
        pending = list(dict.fromkeys(task_ids))
        ready: dict[str, ResultRecord] = {}
        if not pending:
            return ready
        started = time.monotonic()
        deadline = None if timeout_s is None else started + max(timeout_s, 0.0)
        generation = self._conn.data_generation
        by_key = {self.keys.result(t).encode(): t for t in pending}
        waiting = dict(by_key)  # key -> task id, for those not ready yet
        tracked = self._tracked
        # The task this thread addressed last, waited for alone: its record comes
        # pushed, so the store is read only if it has not come by read_at.
        read_at = started + _PUSH_GRACE_S if tracked.start_wait(list(waiting)) else None
        to_read: list[bytes] = [] if read_at is not None else list(waiting)
        what = f"wait for {_tasks(pending)}"
        try:
            while True:
                self._check_data(generation, pending)
                if to_read:
                    try:
                        values = self._conn.retrying(
                            what, partial(tracked.read, to_read), until=deadline
                        )
                    except StillDown as exc:
                        raise self._unreachable(pending, started, exc) from exc.__cause__
                    _take_ready(zip(to_read, values, strict=True), waiting, ready)
                    if not waiting:
                        return ready
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    if read_at is not None:  # never read yet: look once before giving up
                        read_at, to_read = None, list(waiting)
                        continue
                    if self._conn.outage_s() is not None:
                        raise self._unreachable(pending, started, None)
                    return ready
                self._check_outage(pending)
                # Wakes at least every _max_block_s, to notice a long outage or lost
                # data, and reads everything again then: a missed name costs no more.
                slice_s = self._max_block_s if remaining is None else remaining
                if read_at is not None:
                    slice_s = min(slice_s, max(read_at - time.monotonic(), 0.0))
                try:
                    changed = self._conn.retrying(
                        what,
                        partial(tracked.changed, min(slice_s, self._max_block_s)),
                        until=deadline,
                    )
                except StillDown as exc:
                    raise self._unreachable(pending, started, exc) from exc.__cause__
                # Records pushed with the names: in hand, not read again.
                _take_ready(tracked.take_pushed().items(), waiting, ready)
                if not waiting:
                    return ready
                if isinstance(changed, frozenset):
                    to_read = [key for key in waiting if key in changed]
                else:  # the slice ended (the push is late?), or anything may have changed
                    to_read = list(waiting)
                    read_at = None  # read: tracked from now on
        except Closed:
            return ready

    def _check_data(self, generation: int, task_ids: Sequence[str]) -> None:
        """Raise :class:`ResultsLost` if the server lost its data since ``generation``."""
        if self._conn.data_generation != generation:
            raise ResultsLost(
                f"{self._conn.describe()}: the server restarted without its data while "
                f"waiting for {_tasks(task_ids)}: results stored before are gone, and so is "
                "a task still queued on it then; the wait would never end"
            )

    def _check_outage(self, task_ids: Sequence[str]) -> None:
        """Raise :class:`ResultBackendError` once an outage has lasted ``reconnect_timeout_s``
        (a wait with no deadline does not read while it waits for pushed records)."""
        down_s = self._conn.outage_s()
        if down_s is not None and down_s >= self._conn.reconnect_timeout_s:
            raise ResultBackendError(
                f"{self._conn.describe()}: wait for {_tasks(task_ids)}: unreachable for "
                f"{down_s:.0f} s (reconnect_timeout_s={self._conn.reconnect_timeout_s:g})"
            )

    def _unreachable(
        self, task_ids: Sequence[str], started: float, exc: StillDown | None
    ) -> ResultTimeout:
        cause = None if exc is None else exc.__cause__
        why = "" if cause is None else f" ({type(cause).__name__}: {cause})"
        return ResultTimeout(
            f"no result for {_tasks(task_ids)} after {time.monotonic() - started:.1f} s: "
            f"the result store ({self._conn.describe()}) was unreachable{why}"
        )

    def forget(self, task_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(task_ids))
        keys = [self.keys.result(t) for t in ids]
        if keys:
            self._call("forget results", lambda c: command(c, "UNLINK", *keys))

    def set_add(self, key: str, member: str, *, ttl_s: float | None) -> int:
        """``SADD``, ``SCARD`` and the ttl in one ``MULTI``: atomic, and safe to retry."""
        name = self.keys.set(key)

        def run(client: Client) -> int:
            ttl = ("PERSIST", name) if ttl_s is None else ("PEXPIRE", name, _lease_ms(ttl_s))
            _, size, _ = client.transaction([("SADD", name, member), ("SCARD", name), ttl])
            return int(size)

        return self._call(f"add to the set {key!r}", run)

    def incr(self, key: str, amount: int = 1, *, ttl_s: float | None) -> int:
        """Atomic and exactly once, even when retried after a lost reply (incr.lua)."""
        keys = (self.keys.counter(key), self.keys.incr_token(random_hex(12)))
        ttl_ms = 0 if ttl_s is None else max(1, round(ttl_s * 1000))
        argv = (int(amount), ttl_ms, self._incr_token_ms)
        return int(
            self._call_fast(f"increment the counter {key!r}", lambda c: _INCR(c, keys, argv))
        )

    def claim(self, key: str, owner: str, *, ttl_s: float | None) -> str:
        """``SET NX`` then ``GET`` in one ``MULTI``: the first claimer wins, and
        everyone (the winner again, too) reads the winner."""
        name = self.keys.claim(key)

        def run(client: Client) -> str:
            expiry = () if ttl_s is None else ("PX", _lease_ms(ttl_s))
            _, winner = client.transaction([("SET", name, owner, "NX", *expiry), ("GET", name)])
            return bytes(winner).decode()

        return self._call(f"claim {key!r}", run)

    def put_mark(self, key: str, value: str, *, ttl_s: float | None) -> None:
        name = self.keys.claim(key)
        expiry = () if ttl_s is None else ("PX", _lease_ms(ttl_s))
        self._call(f"set the mark {key!r}", lambda c: command(c, "SET", name, value, *expiry))

    def get_marks(self, keys: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        names = [self.keys.claim(k) for k in wanted]
        values = self._call("read marks", lambda c: command(c, "MGET", *names))
        return {
            k: v.decode() if isinstance(v, bytes) else str(v)
            for k, v in zip(wanted, values, strict=True)
            if v is not None
        }

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        argv = (owner, _lease_ms(ttl_s))
        keys = (self.keys.lease(name),)
        return bool(
            self._call_fast(f"acquire the lease {name!r}", lambda c: _LEASE_ACQUIRE(c, keys, argv))
        )

    def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        argv = (owner, _lease_ms(ttl_s))
        keys = (self.keys.lease(name),)
        return bool(
            self._call_fast(f"renew the lease {name!r}", lambda c: _LEASE_RENEW(c, keys, argv))
        )

    def release_lease(self, name: str, owner: str) -> bool:
        keys = (self.keys.lease(name),)
        return bool(
            self._call_fast(
                f"release the lease {name!r}", lambda c: _LEASE_RELEASE(c, keys, (owner,))
            )
        )

    def delete_keys(self, keys: Sequence[str]) -> None:
        names = [
            name
            for k in dict.fromkeys(keys)
            for name in (self.keys.set(k), self.keys.counter(k), self.keys.claim(k))
        ]
        if names:
            self._call("delete sets and counters", lambda c: command(c, "UNLINK", *names))

    def close(self) -> None:
        """Close every connection and wake waiters (they return what they found). Idempotent."""
        self._conn.close()

    def _call(self, what: str, work: Callable[[Client], T]) -> T:
        try:
            return self._conn.call(what, work)
        except Closed:
            raise ResultBackendError(f"{self._conn.describe()} is closed ({what})") from None

    def _call_fast(self, what: str, work: Callable[[FastClient], T]) -> T:
        try:
            return self._conn.call_fast(what, work)
        except Closed:
            raise ResultBackendError(f"{self._conn.describe()} is closed ({what})") from None


def _take_ready(
    found: Iterable[tuple[bytes, bytes | None]],
    waiting: dict[bytes, str],
    ready: dict[str, ResultRecord],
) -> None:
    """Move each waited-for key whose value (read or pushed) is a ready record
    from ``waiting`` to ``ready``."""
    for key, value in found:
        task_id = waiting.get(key)
        if task_id is not None and value is not None:
            record = _decode(task_id, value)
            if record.ready:
                ready[task_id] = record
                del waiting[key]


def _lease_ms(ttl_s: float) -> int:
    return max(1, round(ttl_s * 1000))


def _tasks(task_ids: Sequence[str]) -> str:
    return f"task {task_ids[0]!r}" if len(task_ids) == 1 else f"{len(task_ids)} tasks"


def _encode(record: ResultRecord) -> bytes:
    return encode_record(record)


def _decode(task_id: str, value: bytes) -> ResultRecord:
    return decode_record(task_id, value, store="petiole-redis")


def create_backend(url: str, options: Mapping[str, Any]) -> ResultBackend:
    """Build a :class:`RedisBackend` for a ``redis://``, ``rediss://`` or ``unix://`` URL."""
    return RedisBackend(url, options)
