"""The example result backend: keyed values in the example store (see _store.py).

Each method's contract is in :class:`petiole.plugin_api.ResultBackend`; the
conformance suite (tests/test_conformance.py) checks them all. How it maps onto
the store:

* A record is one value, ``result:<task id>``, encoded by the record codec
  (:func:`~petiole.plugin_api.encode_record`): a store that keeps one value
  per key needs nothing else. Sets, counters and claims are ``set:<key>``,
  ``counter:<key>`` and ``claim:<key>``.
* Expiry is the store's: each value carries when it expires, and an expired one
  reads as absent (and is deleted when touched, or swept).
* ``wait`` is woken by every store (``push_wait``): it waits on the store's
  condition rather than polling.
* ``max_result_bytes`` counts the payload, the serialized result, as every
  backend's does; a bigger one is refused with :class:`ResultTooLarge`, so the
  worker records the task as failed instead of retrying a store that cannot work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from petiole.plugin_api import (
    BackendCapabilities,
    ResultBackend,
    ResultBackendError,
    ResultRecord,
    ResultTooLarge,
    decode_record,
    encode_record,
)
from petiole_example._options import BackendOptions, parse_url
from petiole_example._store import Expiring, Store, StoreError, connect, expires_at

COMPONENT = "example result backend"


def _record_key(task_id: str) -> str:
    return f"result:{task_id}"


class ExampleBackend:
    """A :class:`~petiole.plugin_api.ResultBackend` on the example store (see the module doc)."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        target = parse_url(url, options, BackendOptions, component=COMPONENT)
        self.options = target.options
        self.masked_url = target.masked_url
        self.capabilities = BackendCapabilities(
            push_wait=True, max_result_bytes=target.options.max_result_bytes
        )
        self._conn = connect(target.name)

    def __repr__(self) -> str:
        return f"ExampleBackend({self.masked_url!r})"

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        """Replace the record. Raises :class:`ResultTooLarge` for a payload over
        ``max_result_bytes``, and :class:`ResultBackendError` if ``record.meta`` is
        not JSON-safe; either way nothing is stored."""
        limit = self.options.max_result_bytes
        if len(record.payload) > limit:
            raise ResultTooLarge(len(record.payload), limit, COMPONENT)
        value = encode_record(record)
        with self._store() as store:
            store.sweep()
            store.values[_record_key(record.task_id)] = Expiring(value, expires_at(ttl_s))
            store.changed.notify_all()

    def get(self, task_id: str) -> ResultRecord | None:
        return self.get_many([task_id]).get(task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        with self._store() as store:
            return _records(store, task_ids)

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        """Until every id has a ready record, ``timeout_s`` passes, or the backend is
        closed; returns the ready records found."""
        ids = list(dict.fromkeys(task_ids))
        deadline = None if timeout_s is None else time.monotonic() + max(timeout_s, 0.0)
        with self._store() as store:
            while True:
                ready = {i: r for i, r in _records(store, ids).items() if r.ready}
                remaining = None if deadline is None else deadline - time.monotonic()
                if len(ready) == len(ids) or self._conn.closed:
                    return ready
                if remaining is not None and remaining <= 0:
                    return ready
                store.changed.wait(remaining)

    def forget(self, task_ids: Sequence[str]) -> None:
        with self._store() as store:
            for task_id in task_ids:
                store.values.pop(_record_key(task_id), None)

    def set_add(self, key: str, member: str, *, ttl_s: float | None) -> int:
        with self._store() as store:
            entry = store.live(f"set:{key}")
            if entry is None:
                entry = store.values[f"set:{key}"] = Expiring(set(), None)
            entry.value.add(member)
            entry.expires_at = expires_at(ttl_s)  # after the last add
            return len(entry.value)

    def incr(self, key: str, amount: int = 1, *, ttl_s: float | None) -> int:
        with self._store() as store:
            entry = store.live(f"counter:{key}")
            if entry is None:
                entry = store.values[f"counter:{key}"] = Expiring(0, None)
            entry.value += int(amount)
            entry.expires_at = expires_at(ttl_s)  # after the last increment
            return int(entry.value)

    def claim(self, key: str, owner: str, *, ttl_s: float | None) -> str:
        with self._store() as store:
            entry = store.live(f"claim:{key}")
            if entry is None:  # the first claim wins, and expires ttl_s after it was made
                entry = store.values[f"claim:{key}"] = Expiring(owner, expires_at(ttl_s))
            return str(entry.value)

    def put_mark(self, key: str, value: str, *, ttl_s: float | None) -> None:
        with self._store() as store:
            store.values[f"mark:{key}"] = Expiring(value, expires_at(ttl_s))

    def get_marks(self, keys: Sequence[str]) -> dict[str, str]:
        with self._store() as store:
            found = {key: store.live(f"mark:{key}") for key in keys}
            return {key: str(entry.value) for key, entry in found.items() if entry is not None}

    # Leases: one holder at a time, until ttl_s passes without a renewal. A real
    # server does each of these in one atomic step (a script, a conditional write).

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        with self._store() as store:
            entry = store.live(f"lease:{name}")
            if entry is not None and entry.value != owner:
                return False
            store.values[f"lease:{name}"] = Expiring(owner, expires_at(ttl_s))
            return True

    def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        with self._store() as store:
            entry = store.live(f"lease:{name}")
            if entry is None or entry.value != owner:
                return False
            entry.expires_at = expires_at(ttl_s)
            return True

    def release_lease(self, name: str, owner: str) -> bool:
        with self._store() as store:
            entry = store.live(f"lease:{name}")
            if entry is None or entry.value != owner:
                return False
            del store.values[f"lease:{name}"]
            return True

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Sets, counters, claims and marks; never leases (only their holder releases)."""
        with self._store() as store:
            for key in keys:
                for kind in ("set", "counter", "claim", "mark"):
                    store.values.pop(f"{kind}:{key}", None)

    def close(self) -> None:
        """Close the connection and wake this backend's waiters. Idempotent."""
        self._conn.close()

    @contextmanager
    def _store(self) -> Iterator[Store]:
        # The edge: the client library's errors become Petiole's, with the URL masked.
        try:
            with self._conn.transaction() as store:
                yield store
        except StoreError as exc:
            raise ResultBackendError(f"{COMPONENT} {self.masked_url}: {exc}") from exc


def _records(store: Store, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
    found: dict[str, ResultRecord] = {}
    for task_id in dict.fromkeys(task_ids):
        entry = store.live(_record_key(task_id))
        if entry is not None:
            found[task_id] = decode_record(task_id, entry.value, store="petiole-example")
    return found


def create_backend(url: str, options: Mapping[str, Any]) -> ResultBackend:
    """The factory ``petiole_result_backends`` registers for ``example://``."""
    return ExampleBackend(url, options)
