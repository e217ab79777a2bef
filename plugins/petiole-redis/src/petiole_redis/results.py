"""The Redis result backend.

A record is one string key, ``<prefix>:result:<task id>``, written with
``SET ... PX <ttl>`` (or without ``PX`` to keep it, which also clears an
earlier ttl), so Redis expires it. Its value is::

    b"\\x01" | 4-byte big-endian header length | header JSON | payload bytes

where the header is ``[state, content_type, traceback, date_done, meta]``; the
payload is stored as is, never base64'd.

**wait is pushed, not polled.** Storing a *ready* record also announces it,
in the same round trip (four plain commands, pipelined): ``SET`` the record,
``RPUSH`` a token to the list ``<prefix>:finished:<task id>`` and give it the
record's ttl, and ``PUBLISH`` the record on the channel ``<prefix>:done:<task id>``.
The commands run in that order on one connection, so a waiter woken by the
token or the message reads the record. Each is safe to repeat: a round resent
after an outage, or a redelivered task storing again, leaves at most a token
more (a waiter only needs one). Storing a record that is not ready deletes the
token, so waiters block until it is.

* Waiting for **one** id (``AsyncResult.get``) is one blocking round trip:
  ``BLMOVE`` of the token list onto itself (so the token stays for other
  waiters) pipelined with a ``GET`` of the record. A record stored before is
  read at once; one stored later wakes the ``BLMOVE`` directly.
* Waiting for **several** ids shares one subscribed connection per backend
  (:class:`~petiole_redis._pubsub.Listener`): ``wait`` subscribes to the ids'
  channels, waits for the server to confirm, and only then reads the records
  (``MGET``): a record stored before the subscription is found by the read, one
  stored after it is pushed, so none is missed. After the subscribed connection
  is replaced (the server restarted), waiters read again.

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

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis

from petiole import states
from petiole.backend import BackendCapabilities, ResultBackend, ResultRecord
from petiole.errors import ResultBackendError, ResultsLost, ResultTimeout
from petiole.record_codec import decode_record, encode_record
from petiole_redis._client import Closed, Connector, FastClient, Script, StillDown, command
from petiole_redis._keys import Keys
from petiole_redis._options import parse_url
from petiole_redis._pubsub import Listener

COMPONENT = "redis result backend"

T = TypeVar("T")

# Ids per MGET; several MGETs still go in one pipelined round trip.
_MGET_CHUNK = 1000
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
        self._listener = Listener(self._conn)
        # A single-id wait blocks in slices, returning before the socket's read timeout.
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
        """Replace the record; publish it to waiters when it is ready.

        Raises :class:`~petiole.errors.ResultBackendError` if ``record.meta`` is
        not JSON-safe, or if the server refuses the value (larger than its
        ``proto-max-bulk-len``, 512 MB by default).
        """
        value = _encode(record)
        ttl_ms = 0 if ttl_s is None else max(1, round(ttl_s * 1000))
        commands = self._store_commands(record, value, ttl_ms)

        def run(client: FastClient) -> None:
            for reply in client.execute_pipeline(commands):
                if isinstance(reply, Exception):
                    raise reply

        self._call_fast(f"store the result of task {record.task_id!r}", run)

    def _store_commands(
        self, record: ResultRecord, value: bytes, ttl_ms: int
    ) -> list[tuple[Any, ...]]:
        """The commands of :meth:`store`, sent together in one round trip (see
        "wait is pushed" in the module docstring); each is safe to repeat, so a
        round resent after an outage leaves the same state."""
        task_id = record.task_id
        key, token = self.keys.result(task_id), self.keys.ready_token(task_id)
        store: tuple[Any, ...] = (
            ("SET", key, value, "PX", ttl_ms) if ttl_ms else ("SET", key, value)
        )
        if record.state not in states.READY_STATES:
            return [store, ("DEL", token)]  # waiters block until the record is ready
        # The token follows the record's ttl (PERSIST: kept as long as a kept record).
        keep = ("PEXPIRE", token, ttl_ms) if ttl_ms else ("PERSIST", token)
        return [
            store,
            ("RPUSH", token, "1"),
            keep,
            ("PUBLISH", self.keys.done_channel(task_id), value),
        ]

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
        the module docstring: pushed over pub/sub, no polling). Returns early,
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
        if len(pending) == 1:
            return self._wait_one(pending[0], deadline, started, generation)
        channels = {self.keys.done_channel(t).encode(): t for t in pending}
        try:
            watch = self._listener.watch(
                channels, timeout_s=None if deadline is None else deadline - started
            )
        except Closed:
            return ready
        try:
            must_read = True
            waiting = set(pending)
            while waiting:
                self._check_data(generation, pending)
                if must_read:
                    try:
                        found = self._read(list(waiting), until=deadline)
                    except StillDown as exc:
                        raise self._unreachable(pending, started, exc) from exc.__cause__
                    for task_id, record in found.items():
                        if record.ready:
                            ready[task_id] = record
                            waiting.discard(task_id)
                    must_read = False
                    if not waiting:
                        break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    if self._conn.outage_s() is not None:
                        raise self._unreachable(pending, started, None)
                    break
                self._check_outage(pending)
                # Wakes at least every _max_block_s, to notice a long outage or lost data.
                slice_s = self._max_block_s if remaining is None else remaining
                pushed, must_read = watch.next(min(slice_s, self._max_block_s))
                for task_id, value in pushed:
                    if task_id in waiting:
                        record = _decode(task_id, value)
                        if record.ready:
                            ready[task_id] = record
                            waiting.discard(task_id)
                if self._conn.closed:
                    break
        except Closed:
            return ready
        except ResultBackendError:
            if self._conn.closed:
                return ready
            raise
        finally:
            self._listener.unwatch(watch)
        return ready

    def _wait_one(
        self, task_id: str, deadline: float | None, started: float, generation: int
    ) -> dict[str, ResultRecord]:
        """One id: block on its ready token (``BLMOVE`` from the list to itself, which
        leaves the token for other waiters) and read the record in the same round
        trip. A record stored before is found at once; one stored later wakes the
        ``BLMOVE`` directly, with no subscription and no hand-off between threads."""
        token, key = self.keys.ready_token(task_id), self.keys.result(task_id)

        def run(client: FastClient, block_s: float) -> Any:
            client.connect()  # a new connection first checks the server's data
            self._check_data(generation, [task_id])
            moved, value = client.execute_pipeline(
                [("BLMOVE", token, token, "RIGHT", "LEFT", f"{block_s:.3f}"), ("GET", key)]
            )
            for reply in (moved, value):
                if isinstance(reply, Exception):
                    raise reply
            return value

        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            block_s = self._max_block_s if remaining is None else min(remaining, self._max_block_s)
            try:
                value = self._conn.call_fast(
                    "wait for a result",
                    functools.partial(run, block_s=max(block_s, 0.001)),
                    until=deadline,
                )
            except Closed:
                return {}
            except StillDown as exc:
                raise self._unreachable([task_id], started, exc) from exc.__cause__
            if value is not None:
                record = _decode(task_id, value)
                if record.ready:
                    return {task_id: record}
            if remaining is not None and remaining <= block_s:
                return {}

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
        keys = [self.keys.result(t) for t in ids] + [self.keys.ready_token(t) for t in ids]
        if keys:
            self._call("forget results", lambda c: c.unlink(*keys))

    def set_add(self, key: str, member: str, *, ttl_s: float | None) -> int:
        """``SADD``, ``SCARD`` and the ttl in one ``MULTI``: atomic, and safe to retry."""
        name = self.keys.set(key)

        def run(client: redis.Redis) -> int:
            pipe = client.pipeline(transaction=True)
            pipe.sadd(name, member)
            pipe.scard(name)
            if ttl_s is None:
                pipe.persist(name)
            else:
                pipe.pexpire(name, max(1, round(ttl_s * 1000)))
            return int(pipe.execute()[1])

        return self._call(f"add to the set {key!r}", run)

    def incr(self, key: str, amount: int = 1, *, ttl_s: float | None) -> int:
        """Atomic and exactly once, even when retried after a lost reply (incr.lua)."""
        keys = (self.keys.counter(key), self.keys.incr_token(os.urandom(12).hex()))
        ttl_ms = 0 if ttl_s is None else max(1, round(ttl_s * 1000))
        argv = (int(amount), ttl_ms, self._incr_token_ms)
        return int(
            self._call_fast(f"increment the counter {key!r}", lambda c: _INCR(c, keys, argv))
        )

    def claim(self, key: str, owner: str, *, ttl_s: float | None) -> str:
        """``SET NX`` then ``GET`` in one ``MULTI``: the first claimer wins, and
        everyone (the winner again, too) reads the winner."""
        name = self.keys.claim(key)

        def run(client: redis.Redis) -> str:
            pipe = client.pipeline(transaction=True)
            if ttl_s is None:
                pipe.set(name, owner, nx=True)
            else:
                pipe.set(name, owner, nx=True, px=max(1, round(ttl_s * 1000)))
            pipe.get(name)
            return bytes(pipe.execute()[1]).decode()

        return self._call(f"claim {key!r}", run)

    def put_mark(self, key: str, value: str, *, ttl_s: float | None) -> None:
        name = self.keys.claim(key)
        px = None if ttl_s is None else max(1, round(ttl_s * 1000))
        self._call(f"set the mark {key!r}", lambda c: c.set(name, value, px=px))

    def get_marks(self, keys: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        names = [self.keys.claim(k) for k in wanted]
        values = self._call("read marks", lambda c: c.mget(names))
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
            self._call("delete sets and counters", lambda c: c.unlink(*names))

    def close(self) -> None:
        """Close every connection and wake waiters (they return what they found). Idempotent."""
        self._conn.close()
        self._listener.close()

    def _call(self, what: str, work: Callable[[redis.Redis], T]) -> T:
        try:
            return self._conn.call(what, work)
        except Closed:
            raise ResultBackendError(f"{self._conn.describe()} is closed ({what})") from None

    def _call_fast(self, what: str, work: Callable[[FastClient], T]) -> T:
        try:
            return self._conn.call_fast(what, work)
        except Closed:
            raise ResultBackendError(f"{self._conn.describe()} is closed ({what})") from None


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
