"""The Redis result backend.

A record is one string key, ``<prefix>:result:<task id>``, written with
``SET ... PX <ttl>`` (or without ``PX`` to keep it, which also clears an
earlier ttl), so Redis expires it. Its value is::

    b"\\x01" | 4-byte big-endian header length | header JSON | payload bytes

where the header is ``[state, content_type, traceback, date_done, meta]``; the
payload is stored as is, never base64'd.

**wait is pushed, not polled.** Storing a *ready* record also announces it,
in the same script (store_result.lua, one round trip): it publishes the record
on the channel ``<prefix>:done:<task id>`` and leaves a one-element token list
``<prefix>:finished:<task id>`` with the record's ttl.

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

Sets (``SADD`` + ``SCARD`` + ``PEXPIRE`` in one ``MULTI``), counters
(incr.lua) and claims (``SET NX`` + ``GET`` in one ``MULTI``) are atomic on
the server.
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
from petiole.errors import ResultBackendError
from petiole.record_codec import decode_record, encode_record
from petiole_redis._client import Closed, Connector, FastClient, Script, StillDown, command
from petiole_redis._keys import Keys
from petiole_redis._options import parse_url
from petiole_redis._pubsub import Listener

COMPONENT = "redis result backend"

T = TypeVar("T")

# Ids per MGET; several MGETs still go in one pipelined round trip.
_MGET_CHUNK = 1000
_STORE = Script("store_result")
_INCR = Script("incr")


class RedisBackend:
    """A :class:`~petiole.backend.ResultBackend` on Redis (see the module docstring)."""

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

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        """Replace the record; publish it to waiters when it is ready.

        Raises :class:`~petiole.errors.ResultBackendError` if ``record.meta`` is
        not JSON-safe, or if the server refuses the value (larger than its
        ``proto-max-bulk-len``, 512 MB by default).
        """
        value = _encode(record)
        ttl_ms = 0 if ttl_s is None else max(1, round(ttl_s * 1000))
        channel = (
            self.keys.done_channel(record.task_id) if record.state in states.READY_STATES else ""
        )
        keys = (self.keys.result(record.task_id), self.keys.ready_token(record.task_id))
        self._call_fast(
            f"store the result of task {record.task_id!r}",
            lambda c: _STORE(c, keys, (value, ttl_ms, channel)),
        )

    def get(self, task_id: str) -> ResultRecord | None:
        return self.get_many([task_id]).get(task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """Unexpired records of those ids, in one round trip (pipelined ``MGET``s)."""
        ids = list(dict.fromkeys(task_ids))
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

        values = self._call_fast("read results", run)
        return {t: _decode(t, v) for t, v in zip(ids, values, strict=True) if v is not None}

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        """Block until every id has a ready record, or ``timeout_s`` passes (see
        the module docstring: pushed over pub/sub, no polling). Returns early,
        with what it found, if the backend is closed meanwhile."""
        pending = list(dict.fromkeys(task_ids))
        ready: dict[str, ResultRecord] = {}
        if not pending:
            return ready
        deadline = None if timeout_s is None else time.monotonic() + max(timeout_s, 0.0)
        if len(pending) == 1:
            return self._wait_one(pending[0], deadline)
        channels = {self.keys.done_channel(t).encode(): t for t in pending}
        try:
            watch = self._listener.watch(channels)
        except Closed:
            return ready
        try:
            must_read = True
            waiting = set(pending)
            while waiting:
                if must_read:
                    for task_id, record in self.get_many(list(waiting)).items():
                        if record.ready:
                            ready[task_id] = record
                            waiting.discard(task_id)
                    must_read = False
                    if not waiting:
                        break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                pushed, must_read = watch.next(remaining)
                for task_id, value in pushed:
                    if task_id in waiting:
                        record = _decode(task_id, value)
                        if record.ready:
                            ready[task_id] = record
                            waiting.discard(task_id)
                if self._conn.closed:
                    break
        except ResultBackendError:
            if self._conn.closed:
                return ready
            raise
        finally:
            self._listener.unwatch(watch)
        return ready

    def _wait_one(self, task_id: str, deadline: float | None) -> dict[str, ResultRecord]:
        """One id: block on its ready token (``BLMOVE`` from the list to itself, which
        leaves the token for other waiters) and read the record in the same round
        trip. A record stored before is found at once; one stored later wakes the
        ``BLMOVE`` directly, with no subscription and no hand-off between threads."""
        token, key = self.keys.ready_token(task_id), self.keys.result(task_id)

        def run(client: FastClient, block_s: float) -> Any:
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
            except (Closed, StillDown):
                return {}
            if value is not None:
                record = _decode(task_id, value)
                if record.ready:
                    return {task_id: record}
            if remaining is not None and remaining <= block_s:
                return {}

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


def _encode(record: ResultRecord) -> bytes:
    return encode_record(record)


def _decode(task_id: str, value: bytes) -> ResultRecord:
    return decode_record(task_id, value, store="petiole-redis")


def create_backend(url: str, options: Mapping[str, Any]) -> ResultBackend:
    """Build a :class:`RedisBackend` for a ``redis://``, ``rediss://`` or ``unix://`` URL."""
    return RedisBackend(url, options)
