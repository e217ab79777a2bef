"""The typed edge over pymemcache: routing keys to servers, and translating errors.

pymemcache ships no type hints, so it is imported here only, and every value it
returns is checked before it leaves this module.

**Several servers.** Each key lives on exactly one server, chosen by the same
rendezvous hash (over ``host:port`` names) as pymemcache's ``HashClient``, so
an app using ``HashClient`` with the same server list finds the same keys on
the same servers. We do not use ``HashClient`` itself: after a failure it
answers later calls with silent defaults (``get`` → ``None``, ``add`` →
``False``) until it retries the server, and after a few failures it drops the
server from the ring and re-hashes its keys to the others — both would let two
callers win the same ``claim`` or count a chord member twice, and re-hashing
back on recovery would serve stale sets. Here the ring never changes: a call
for a key on a dead server raises
:class:`~petiole.errors.ResultBackendError`, and keys on the other servers keep
working. (memcached keeps nothing on disk: a server that comes back is empty.)

**Errors.** Every pymemcache exception and socket error becomes a
``ResultBackendError`` naming the backend's servers and the one that failed.
Calls that are safe to repeat (everything except ``incr``/``decr``) are tried
again after a connection error: a pooled connection may simply be stale (the
server restarted since it was opened). pymemcache discards the failed one, so
the next try takes another pooled connection, and once none is left, a fresh
one; only when a fresh connection fails too is the error raised. Timeouts are
not retried.

**Fork.** A process forked from one that used the backend opens its own
connections on first use rather than sharing its parent's sockets.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

# pymemcache 4 has no py.typed marker and typeshed has no stubs for it; every value
# it returns is checked below, so nothing untyped leaves this module.
from pymemcache.client.base import PooledClient  # type: ignore[import-untyped]
from pymemcache.client.rendezvous import RendezvousHash  # type: ignore[import-untyped]
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheError,
    MemcacheUnexpectedCloseError,
)

from petiole.errors import ResultBackendError
from petiole.outages import Closable, Closed
from petiole_memcached._options import COMPONENT, MemcachedTarget

T = TypeVar("T")

#: Tries of a repeatable call when its connections keep failing (the first included).
_MAX_ATTEMPTS = 64
#: memcached reads an expiry above 30 days as a unix timestamp, not a duration.
MAX_RELATIVE_EXPIRY_S = 30 * 24 * 3600
_CLIENT_ERRORS = (MemcacheError, OSError, ValueError)


def expiry(ttl_s: float | None, *, now: float | None = None) -> int:
    """memcached's ``exptime`` for an entry that must live at least ``ttl_s`` seconds.

    ``None`` → 0 (never expires). memcached counts whole seconds on a clock
    that ticks once a second, so an entry with exptime ``n`` is gone after
    between ``n - 1`` and ``n`` seconds: we round up and add one second, so an
    entry never disappears early and lingers at most about two seconds late.
    Durations above 30 days are sent as an absolute unix time, which memcached
    reads against its own clock (keep the servers' clocks synchronized).
    """
    if ttl_s is None:
        return 0
    seconds = max(0, -(-int(ttl_s * 1000) // 1000)) + 1
    if seconds <= MAX_RELATIVE_EXPIRY_S:
        return seconds
    return int(time.time() if now is None else now) + seconds


class Servers(Closable):
    """One connection pool per server, keys routed by rendezvous hashing.

    A command after :meth:`close` raises :class:`~petiole.outages.Closed`, as
    does one whose connection fails while it closes.
    """

    def __init__(self, target: MemcachedTarget) -> None:
        Closable.__init__(self)
        self.target = target
        self._names = dict(zip(_node_names(target), target.server_names, strict=True))
        self._clients = self._connect()
        self._pid = os.getpid()
        self._fork_lock = threading.Lock()
        # One server needs no hashing (and HashClient would send every key there too).
        self._ring: Any = (
            RendezvousHash(nodes=list(self._clients)) if len(self._clients) > 1 else None
        )
        self._only = next(iter(self._clients))

    def _connect(self) -> dict[str, Any]:
        opts = self.target.options
        return {
            node: PooledClient(
                server,
                connect_timeout=opts.connect_timeout_s,
                timeout=opts.socket_timeout_s,
                no_delay=True,
                default_noreply=False,  # add() must report NOT_STORED
                allow_unicode_keys=False,
            )
            for node, server in zip(self._names, self.target.servers, strict=True)
        }

    def _forked(self) -> None:
        """In a forked child: never share the parent's sockets (replies would cross)."""
        with self._fork_lock:
            if self._pid != os.getpid():
                # Not closed: closing would only drop the child's copies of the parent's sockets.
                self._clients = self._connect()
                self._pid = os.getpid()

    def describe(self) -> str:
        return f"{COMPONENT} {self.target.masked_url}"

    def close(self) -> None:
        """Close every pooled connection; a later command raises ``Closed``. Idempotent."""
        if not self._mark_closed():
            return
        for client in self._clients.values():
            # Closing: a socket that fails to close is gone anyway.
            with contextlib.suppress(*_CLIENT_ERRORS):
                client.close()

    # -- commands ------------------------------------------------------------------

    def get(self, key: str, what: str) -> bytes | None:
        return _optional_bytes(self._on(key, what, lambda c: c.get(key)))

    def gets(self, key: str, what: str) -> tuple[bytes | None, bytes | None]:
        value, token = self._on(key, what, lambda c: c.gets(key))
        if value is None:
            return None, None
        return _bytes(value), _bytes(token)

    def get_many(self, keys: Iterable[str], what: str) -> dict[str, bytes]:
        """One ``get k1 k2 ...`` per server holding any of the keys."""
        found: dict[str, bytes] = {}
        for node, group in self._by_server(keys).items():
            values = self._run(node, what, _call("get_many", group))
            found.update({str(k): _bytes(v) for k, v in dict(values).items()})
        return found

    def add(self, key: str, value: bytes, exptime: int, what: str) -> bool:
        """Store only if absent; ``True`` if this call stored it."""
        return bool(self._on(key, what, lambda c: c.add(key, value, expire=exptime)))

    def set(self, key: str, value: bytes, exptime: int, what: str) -> None:
        self._on(key, what, lambda c: c.set(key, value, expire=exptime))

    def cas(self, key: str, value: bytes, token: bytes, exptime: int, what: str) -> bool:
        """Store only if unchanged since the ``gets`` that returned ``token``."""
        return bool(self._on(key, what, lambda c: c.cas(key, value, token, expire=exptime)))

    def incr(self, key: str, amount: int, what: str) -> int | None:
        """Add ``amount`` (>= 0) to a decimal value; ``None`` if the key is missing."""
        return _optional_int(self._on(key, what, lambda c: c.incr(key, amount), repeatable=False))

    def decr(self, key: str, amount: int, what: str) -> int | None:
        """Subtract ``amount`` (>= 0), stopping at 0; ``None`` if the key is missing."""
        return _optional_int(self._on(key, what, lambda c: c.decr(key, amount), repeatable=False))

    def touch(self, key: str, exptime: int, what: str) -> bool:
        """Set a new expiry; ``False`` if the key is missing."""
        return bool(self._on(key, what, lambda c: c.touch(key, expire=exptime)))

    def delete_many(self, keys: Iterable[str], what: str) -> None:
        """The deletes for each server in one round trip; missing keys are ignored."""
        for node, group in self._by_server(keys).items():
            self._run(node, what, _call("delete_many", group))

    def check(self) -> None:
        """Ask every server for its version; raise naming those that do not answer."""
        failures: list[str] = []
        for node, client in self._clients.items():
            try:
                client.version()
            except _CLIENT_ERRORS as exc:
                failures.append(f"{self._names[node]}: {type(exc).__name__}: {exc}")
        if failures:
            raise ResultBackendError(
                f"cannot connect to the {self.describe()}: " + "; ".join(failures)
            )

    # -- routing and errors -------------------------------------------------------

    def _node(self, key: str) -> str:
        if self._ring is None:
            return self._only
        return str(self._ring.get_node(key))

    def _by_server(self, keys: Iterable[str]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for key in dict.fromkeys(keys):
            groups.setdefault(self._node(key), []).append(key)
        return groups

    def _on(self, key: str, what: str, work: Callable[[Any], T], *, repeatable: bool = True) -> T:
        return self._run(self._node(key), what, work, repeatable=repeatable)

    def _run(self, node: str, what: str, work: Callable[[Any], T], *, repeatable: bool = True) -> T:
        if self._closed.is_set():
            raise Closed
        if self._pid != os.getpid():
            self._forked()
        client = self._clients[node]
        for _ in range(_MAX_ATTEMPTS - 1):
            # A pooled connection may be stale; a fresh one failing means the server is down.
            pooled = bool(client.client_pool.free)
            try:
                return work(client)
            except _CLIENT_ERRORS as exc:
                if self._closed.is_set():
                    raise Closed from exc
                if not (repeatable and pooled and _stale_connection(exc)):
                    raise ResultBackendError(self._message(node, what, exc)) from exc
        try:
            return work(client)
        except _CLIENT_ERRORS as exc:
            raise ResultBackendError(self._message(node, what, exc)) from exc

    def _message(self, node: str, what: str, exc: BaseException) -> str:
        # pymemcache carries the server's reply as bytes: show it as text.
        first = exc.args[0] if exc.args else ""
        detail = first.decode(errors="replace") if isinstance(first, bytes) else str(exc)
        message = (
            f"{self.describe()}: cannot {what} on server {self._names[node]}: "
            f"{type(exc).__name__}: {detail}"
        )
        if "too large" in detail:
            message += (
                f" (the server's item size limit, its -I option, is below max_item_bytes="
                f"{self.target.options.max_item_bytes}: lower that option to match)"
            )
        return message


def _node_names(target: MemcachedTarget) -> list[str]:
    # HashClient's own names ("host:port", IPv6 unbracketed), so keys land where it puts them.
    return [f"{host}:{port}" for host, port in target.servers]


def _call(method: str, *args: Any) -> Callable[[Any], Any]:
    """``client.<method>(*args)`` as a function of the client."""
    return lambda client: getattr(client, method)(*args)


def _stale_connection(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return False
    return isinstance(exc, (OSError, MemcacheUnexpectedCloseError))


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise ResultBackendError(f"memcached returned {type(value).__name__}, expected bytes")


def _optional_bytes(value: Any) -> bytes | None:
    return None if value is None else _bytes(value)


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ResultBackendError(f"memcached returned {type(value).__name__}, expected an integer")
