"""The memcached result backend.

A record is one value, ``<prefix>:r:<task id>`` (see _keys.py), encoded by
petiole.record_codec and stored with ``set`` and memcached's expiry (see
:func:`~petiole_memcached._servers.expiry`). ``get_many`` is one multi-key
``get`` per server. memcached cannot notify anyone, so ``wait`` polls, backing
off from 5 ms to ``wait_poll_max_s``.

Atomic steps use memcached's own atomic commands:

* **claim** — ``add`` (stores only if the key is absent: the first claimer
  wins), then ``get`` to read the winner.
* **incr** — ``incr`` (``decr`` for a negative amount); on a missing counter,
  ``add`` it at 0 and ``incr`` again, so racing creators never reset each
  other. Counters are kept offset by 2**62 because memcached's counters are
  unsigned; not by 2**63, because memcached before 1.6.22 (Debian's is 1.6.18)
  calls a value of 2**63 or more non-numeric when the memory after it holds a
  ``-`` (it looks for a minus sign with ``strchr``, past the value's end). A
  count therefore stays within +/-2**62. Then ``touch`` renews the expiry.
  ``incr`` is never retried after a lost connection: it might have been applied.
* **set_add** — see _sets.py: ``add`` per member, ``cas`` on the set's state.
* **marks** — ``set`` on the claim keys, read with a multi-key ``get``.
* **leases** — one item holding the holder, expired by memcached's clock
  (whole seconds, never early, up to two seconds late: see
  :func:`~petiole_memcached._servers.expiry`). Acquire is ``add``; when the
  item exists, ``gets`` and, if it is free (empty: released) or the caller's
  own, ``cas`` it. Renew is ``gets`` + ``cas`` by the holder; release is
  ``gets`` + ``cas`` to empty (memcached has no compare-and-delete). A ``cas``
  that loses to a concurrent change reads again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from petiole.backend import BackendCapabilities, ResultBackend, ResultRecord
from petiole.errors import ResultBackendError, ResultTooLarge
from petiole.outages import Closed
from petiole.record_codec import decode_record, encode_record
from petiole_memcached._keys import Keys
from petiole_memcached._options import parse_url
from petiole_memcached._servers import Servers, expiry
from petiole_memcached._sets import Sets

T = TypeVar("T")

#: Room kept out of ``max_item_bytes`` for the key, memcached's item header
#: (about 60 bytes) and the record's own header (state, meta, traceback).
HEADROOM_BYTES = 1024
#: memcached's item header, beyond the key and the value.
_ITEM_OVERHEAD_BYTES = 64
_COUNTER_OFFSET = 2**62  # see the module docstring: never 2**63
_POLL_FIRST_S = 0.005


class MemcachedBackend:
    """A :class:`~petiole.backend.ResultBackend` and :class:`~petiole.backend.Coordination`
    on memcached (see the module docstring)."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        target = parse_url(url, options)
        self.options = target.options
        self.max_item_bytes = target.options.max_item_bytes
        self.capabilities = BackendCapabilities(
            push_wait=False, max_result_bytes=self.max_item_bytes - HEADROOM_BYTES
        )
        self.keys = Keys(target.options.key_prefix)
        self._servers = Servers(target)
        self._sets = Sets(self._servers, self.keys)
        self._check(target.options.startup_timeout_s)

    def __repr__(self) -> str:
        return f"MemcachedBackend({self._servers.target.masked_url!r})"

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        """Replace the record with one ``set``.

        Raises :class:`~petiole.errors.ResultTooLarge` if the payload is over
        ``capabilities.max_result_bytes`` or the whole item (payload, traceback,
        meta, key) is over memcached's item size (``max_item_bytes``): storing it
        again could never succeed, so the worker records the task as failed. Raises
        :class:`~petiole.errors.ResultBackendError` if ``record.meta`` is not
        JSON-safe. Nothing is stored then (an earlier record of the task is kept).
        """
        limit = self.max_item_bytes - HEADROOM_BYTES
        if len(record.payload) > limit:
            raise ResultTooLarge(
                len(record.payload),
                limit,
                "memcached result backend",
                f"memcached's item size, the max_item_bytes option, {self.max_item_bytes}, "
                f"less {HEADROOM_BYTES} for the key and headers; return less from task "
                f"{record.task_id!r}, or keep large results elsewhere",
            )
        value = encode_record(record)
        key = self.keys.result(record.task_id)
        size = len(value) + len(key) + _ITEM_OVERHEAD_BYTES
        if size > self.max_item_bytes:
            raise ResultTooLarge(
                size,
                self.max_item_bytes,
                "memcached item",
                f"task {record.task_id!r}'s result with its traceback and meta; the "
                "max_item_bytes option, memcached's -I",
            )
        self._call(
            lambda: self._servers.set(
                key, value, expiry(ttl_s), f"store the result of task {record.task_id!r}"
            )
        )

    def get(self, task_id: str) -> ResultRecord | None:
        return self.get_many([task_id]).get(task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """Unexpired records of those ids: one multi-key ``get`` per server."""
        keys = {self.keys.result(t): t for t in dict.fromkeys(task_ids)}
        if not keys:
            return {}
        values = self._call(lambda: self._servers.get_many(keys, "read results"))
        return {
            keys[k]: decode_record(keys[k], v, store="petiole-memcached") for k, v in values.items()
        }

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        """Poll until every id has a ready record or ``timeout_s`` passes.

        Polls the ids not yet ready with ``get_many``, sleeping 5 ms after the
        first poll and twice as long after each next one, up to
        ``wait_poll_max_s``. Returns early, with what it found, if the backend is
        closed meanwhile.
        """
        waiting = list(dict.fromkeys(task_ids))
        ready: dict[str, ResultRecord] = {}
        deadline = None if timeout_s is None else time.monotonic() + max(timeout_s, 0.0)
        pause_s = _POLL_FIRST_S
        while waiting:
            try:
                found = self.get_many(waiting)
            except ResultBackendError:
                if self._servers.closed:
                    break
                raise
            for task_id, record in found.items():
                if record.ready:
                    ready[task_id] = record
            waiting = [t for t in waiting if t not in ready]
            if not waiting:
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            if self._servers.wait_closed(pause_s if remaining is None else min(pause_s, remaining)):
                break
            pause_s = min(pause_s * 2, self.options.wait_poll_max_s)
        return ready

    def forget(self, task_ids: Sequence[str]) -> None:
        keys = [self.keys.result(t) for t in dict.fromkeys(task_ids)]
        if keys:
            self._call(lambda: self._servers.delete_many(keys, "forget results"))

    def set_add(self, key: str, member: str, *, ttl_s: float | None) -> int:
        """Atomic and counted once, even across crashes (see _sets.py)."""
        return self._call(lambda: self._sets.add(key, member, ttl_s=ttl_s))

    def incr(self, key: str, amount: int = 1, *, ttl_s: float | None) -> int:
        """``incr``/``decr``, creating the counter at 0 with ``add``; then ``touch``."""
        name = self.keys.counter(key)
        what = f"increment the counter {key!r}"
        amount = int(amount)

        def run() -> int:
            servers = self._servers
            while True:
                if amount >= 0:
                    value = servers.incr(name, amount, what)
                else:
                    value = servers.decr(name, -amount, what)
                if value is not None:
                    break
                # Missing: create it at 0, unless a racing caller just did; then count.
                servers.add(name, str(_COUNTER_OFFSET).encode(), expiry(ttl_s), what)
            servers.touch(name, expiry(ttl_s), what)
            return value - _COUNTER_OFFSET

        return self._call(run)

    def claim(self, key: str, owner: str, *, ttl_s: float | None) -> str:
        """``add`` (the first claimer wins), then ``get`` to read the winner."""
        name = self.keys.claim(key)
        what = f"claim {key!r}"
        mine = owner.encode("utf-8", "surrogatepass")

        def run() -> str:
            while True:
                if self._servers.add(name, mine, expiry(ttl_s), what):
                    return owner
                winner = self._servers.get(name, what)
                if winner is not None:
                    return winner.decode("utf-8", "surrogatepass")
                # The claim expired between our add and get: try again.

        return self._call(run)

    def put_mark(self, key: str, value: str, *, ttl_s: float | None) -> None:
        name = self.keys.claim(key)
        data = value.encode("utf-8", "surrogatepass")
        self._call(lambda: self._servers.set(name, data, expiry(ttl_s), f"set the mark {key!r}"))

    def get_marks(self, keys: Sequence[str]) -> dict[str, str]:
        by_name = {self.keys.claim(k): k for k in dict.fromkeys(keys)}
        if not by_name:
            return {}
        found = self._call(lambda: self._servers.get_many(list(by_name), "read marks"))
        return {by_name[n]: v.decode("utf-8", "surrogatepass") for n, v in found.items()}

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """``add``; else, when free or already ``owner``'s, ``cas`` (see the module docstring)."""
        key = self.keys.lease(name)
        what = f"acquire the lease {name!r}"
        mine = _lease_owner(owner)

        def run() -> bool:
            servers = self._servers
            while True:
                if servers.add(key, mine, expiry(ttl_s), what):
                    return True
                holder, token = servers.gets(key, what)
                if holder is None or token is None:
                    continue  # expired between our add and gets
                if holder not in (mine, b""):
                    return False
                if servers.cas(key, mine, token, expiry(ttl_s), what):
                    return True

        return self._call(run)

    def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        key = self.keys.lease(name)
        return self._call(
            lambda: self._swap_lease(key, _lease_owner(owner), _lease_owner(owner), ttl_s)
        )

    def release_lease(self, name: str, owner: str) -> bool:
        key = self.keys.lease(name)
        return self._call(lambda: self._swap_lease(key, _lease_owner(owner), b"", 1.0))

    def _swap_lease(self, key: str, holder: bytes, value: bytes, ttl_s: float) -> bool:
        """Replace the lease's value by ``value`` if ``holder`` holds it (``gets`` + ``cas``)."""
        what = "renew or release a lease"
        while True:
            found, token = self._servers.gets(key, what)
            if found != holder or token is None:
                return False
            if self._servers.cas(key, value, token, expiry(ttl_s), what):
                return True

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete sets (their state: see _sets.py), counters, claims and marks."""
        names = [
            name
            for k in dict.fromkeys(keys)
            for name in (self.keys.set(k), self.keys.counter(k), self.keys.claim(k))
        ]
        if names:
            self._call(lambda: self._servers.delete_many(names, "delete sets and counters"))

    def close(self) -> None:
        """Close every connection; waiters return what they found. Idempotent."""
        self._servers.close()

    def _call(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except Closed:
            raise ResultBackendError(f"{self._servers.describe()} is closed") from None

    def _check(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._servers.check()
                return
            except ResultBackendError:
                if time.monotonic() >= deadline:
                    self._servers.close()
                    raise
                time.sleep(0.1)


def _lease_owner(owner: str) -> bytes:
    if not owner:
        raise ValueError("a lease owner must not be empty")
    return owner.encode("utf-8", "surrogatepass")


def create_backend(url: str, options: Mapping[str, Any]) -> ResultBackend:
    """Build a :class:`MemcachedBackend` for a ``memcached://`` URL."""
    return MemcachedBackend(url, options)
