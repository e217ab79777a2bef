"""The example store: an in-process stand-in for the server and client library
a real plugin talks to. Replace this module with your client library.

It plays both parts:

* **The server**: a :class:`Store` holds queues, dead letters and keyed values
  (results, sets, counters, claims). Stores are process-wide by name, as
  servers are machine-wide by address, so every component built from
  ``example://name`` in this process shares one. Every operation runs under
  the store's one lock, as a real server runs a script or a transaction
  atomically; a change wakes whoever waits on the store.
* **The client**: :func:`connect` opens a :class:`Connection`; a closed one
  refuses work with :class:`StoreError`, the client library's own exception,
  which the components translate into Petiole's errors at their edge.

Nothing survives the process, and nothing is shared with another process: the
store is for the template's tests and for trying a plugin out, not for work.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: How often, at most, :meth:`Store.sweep` looks for expired values.
SWEEP_INTERVAL_S = 10.0


class StoreError(Exception):
    """The client library's own error: here, a connection used after it was closed."""


@dataclass(eq=False, slots=True)
class Message:
    """A queued message. It is due when ``visible_at`` (wall clock) has passed; a
    lease or a delay moves ``visible_at`` on, and ``receipt`` names the current lease."""

    seq: int
    payload: bytes
    message_id: str
    visible_at: float
    delivery_count: int = 0
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class Buried:
    """A dead-lettered message, with why and when."""

    message: Message
    reason: str
    dead_at: float


@dataclass(slots=True)
class Expiring:
    """A keyed value and when it expires (``time.monotonic()``; ``None`` = never)."""

    value: Any
    expires_at: float | None

    def alive(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


def expires_at(ttl_s: float | None) -> float | None:
    return None if ttl_s is None else time.monotonic() + ttl_s


@dataclass(eq=False)
class Store:
    """One named store. Read or change it only inside :meth:`Connection.transaction`."""

    name: str
    changed: threading.Condition = field(default_factory=threading.Condition)
    seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    queues: dict[str, dict[int, Message]] = field(default_factory=dict)
    dead: dict[str, dict[int, Buried]] = field(default_factory=dict)
    values: dict[str, Expiring] = field(default_factory=dict)
    next_sweep_at: float = 0.0

    def live(self, key: str) -> Expiring | None:
        """The value at ``key`` unless it expired (then it is deleted)."""
        entry = self.values.get(key)
        if entry is not None and not entry.alive(time.monotonic()):
            del self.values[key]
            return None
        return entry

    def sweep(self) -> None:
        """Delete expired values nobody touched since, at most every ``SWEEP_INTERVAL_S``."""
        now = time.monotonic()
        if now < self.next_sweep_at:
            return
        self.next_sweep_at = now + SWEEP_INTERVAL_S
        for key in [k for k, entry in self.values.items() if not entry.alive(now)]:
            del self.values[key]


class Connection:
    """One component's connection to a store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.closed = False

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """The store, locked for the block. ``store.changed.wait()`` inside it
        releases the lock while waiting, as a blocking server call would."""
        with self.store.changed:
            if self.closed:
                raise StoreError(f"the connection to store {self.store.name!r} is closed")
            yield self.store

    def close(self) -> None:
        """Close, and wake this connection's waiters so they return. Idempotent."""
        with self.store.changed:
            self.closed = True
            self.store.changed.notify_all()


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def connect(name: str) -> Connection:
    """A connection to the store ``name``, created on first use."""
    with _stores_lock:
        store = _stores.get(name)
        if store is None:
            store = _stores[name] = Store(name)
    return Connection(store)


def drop(name: str) -> None:
    """Forget the store ``name`` (a test server stopping): later connections get a new one."""
    with _stores_lock:
        _stores.pop(name, None)
