"""The connection to Redis shared by the transport and the result backend.

:class:`Connector` owns the connections (:mod:`petiole_redis._connection`) and
is the plugin's edge: every call to Redis goes through :meth:`Connector.call`, which

* translates the client's exceptions (:mod:`petiole_redis._errors`) into the
  component's own error type (:class:`~petiole.errors.TransportError` or
  :class:`~petiole.errors.ResultBackendError`), with the URL's password masked;
* rides out an outage (the server restarting, a network blip): connection
  errors are retried with jittered exponential backoff for up to
  ``reconnect_timeout_s`` counted from the start of the outage, and the outage
  is logged as **one** warning line however many threads and calls hit it
  (the recovery is logged at INFO). A failure within five seconds of a
  recovery continues the same outage, so a flapping server is one line too
  (see :mod:`petiole.outages`). Every operation is safe to retry: the scripts
  check receipts and ids, ``incr`` carries a token (see incr.lua).

A server that cannot be reached when the component is created is most likely
a configuration problem: :meth:`Connector.connect` tries for
``startup_timeout_s`` (2 s by default, enough to ride out a restart) and then
fails with an error naming the URL.

**Lost data.** A server restarted without persistence (or with its files
lost) comes back empty: queued messages, leases and results are gone, and
retrying cannot bring them back. Every new connection (its connect calls
:meth:`Connector.on_connect`, pooled, per-thread or pub/sub) asks the
server for its ``run_id`` (``INFO server``). The first one also makes sure the
key ``<prefix>:epoch`` holds a random token (``SET NX``) and remembers it.
When a later connection finds a different ``run_id`` (the server restarted,
or another one took over), it reads the token again: the same token means the
data survived (AOF or RDB reload, a replica promoted); a missing or different
one means it did not (whoever first finds it missing writes a new one, so
every client notices, whenever it reconnects). Then :attr:`Connector.data_generation`
grows by one, :attr:`Connector.data_lost_at` is set, and one ERROR line per
process and restart says so. The result backend fails the waits that were
running (:class:`~petiole.errors.ResultsLost`); the transport exposes both
attributes for the worker. A server that refuses ``INFO`` turns the check off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, Protocol, TypeVar

from petiole.errors import PetioleError
from petiole.ids import current_pid
from petiole.outages import Closable, DownTooLong, OutageTracker, backoff_s, call_through_outage
from petiole.outages import Closed as Closed  # re-exported for the transport and backend
from petiole.outages import StillDown as StillDown  # re-exported likewise
from petiole_redis._connection import Address, Connection, address_of
from petiole_redis._errors import (
    AuthenticationError,
    CertificateError,
    HostNotFound,
    NoScriptError,
    RedisConnectionError,
    RedisError,
    RedisTimeoutError,
    ResponseError,
)
from petiole_redis._keys import Keys
from petiole_redis._options import RedisTarget

logger = logging.getLogger("petiole_redis")

T = TypeVar("T")


class Client(Protocol):
    """What :meth:`Connector.call` and :meth:`Connector.call_fast` hand to the work:
    commands, plain pipelines and transactions, replies as the protocol gives them."""

    def execute_command(self, *args: Any) -> Any: ...
    def execute_pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]: ...
    def transaction(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]: ...


def command(client: Client, *args: Any) -> Any:
    """One command's reply (raised if it is an error reply)."""
    return client.execute_command(*args)


# A thread's connection unused for this long is checked for a server-side close
# before its next command (see FastClient._connection).
_IDLE_CHECK_S = 1.0


class FastClient:
    """Commands on the calling thread's own connection.

    The hot path (publish, reserve, ack, result store, single-result wait) goes
    through this: no pool check-out and return with their locks, and no
    connection shared between threads. Each thread keeps one connection (tracked
    so that :meth:`Connector.close` disconnects it too). Any error other than a
    reply error disconnects it, so the next call reconnects; the retry policy
    stays :meth:`Connector.call`'s.
    """

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._local = threading.local()

    def _connection(self) -> Connection:
        local = self._local
        connection: Connection | None = getattr(local, "connection", None)
        now = time.monotonic()
        if connection is None or local.pid != current_pid():
            connection = self._connector.new_connection()
            self._connector.track(connection)
            local.connection, local.pid = connection, current_pid()
        elif now - local.used_at >= _IDLE_CHECK_S:
            # Asked only of a connection idle for a while: the check is a system
            # call, a sixth of a publish's CPU, and a connection in use is never
            # out of step (any error but a reply disconnects it), while a server
            # that closed it a moment ago fails the call, which the outage policy
            # retries.
            _drop_if_stale(connection)
        local.used_at = now
        return connection

    def execute_command(self, *args: Any) -> Any:
        return self._connection().command(*args)

    def connect(self) -> None:
        """Connect the thread's connection now unless it is connected (a new
        connection checks the server for lost data first: see the module docstring)."""
        self._connection().connect()

    def execute_pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send every command, then read every reply (one round trip). A reply
        error is returned in its place, not raised."""
        return self._connection().pipeline(commands)

    def transaction(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The commands in one ``MULTI``/``EXEC`` (see :meth:`Connection.transaction`)."""
        return self._connection().transaction(commands)


def _drop_if_stale(connection: Connection) -> None:
    """A connection with something to read between commands was closed by the
    server (a restart) or is out of step: disconnect it, so that the call starts
    afresh rather than fails on it."""
    if not connection.connected:
        return
    try:
        stale = connection.can_read(timeout=0)
    except (RedisError, OSError):
        stale = True
    if stale:
        connection.disconnect()


class PooledClient:
    """Commands on a connection taken from a pool for each call: the cold paths
    (purge, size, dead letters, coordination), from any thread. At most
    ``max_connections`` connections at once (0: no limit); a call beyond that
    fails with a connection error, which the outage policy retries."""

    def __init__(self, connector: Connector, max_connections: int) -> None:
        self._connector = connector
        self._max = max_connections
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._in_use = 0
        self._pid = os.getpid()

    def _take(self) -> Connection:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours
                self._idle, self._in_use, self._pid = [], 0, os.getpid()
            if self._idle:
                connection = self._idle.pop()
            elif self._max and self._in_use >= self._max:
                raise RedisConnectionError(f"Too many connections (max_connections={self._max})")
            else:
                connection = self._connector.new_connection()
                self._connector.track(connection)
            self._in_use += 1
            return connection

    def _give_back(self, connection: Connection) -> None:
        with self._lock:
            self._in_use -= 1
            if connection.connected and not self._connector.closed:
                self._idle.append(connection)

    def _run(self, work: Callable[[Connection], T]) -> T:
        connection = self._take()
        try:
            _drop_if_stale(connection)
            return work(connection)
        finally:
            self._give_back(connection)

    def execute_command(self, *args: Any) -> Any:
        return self._run(lambda c: c.command(*args))

    def execute_pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        return self._run(lambda c: c.pipeline(commands))

    def transaction(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        return self._run(lambda c: c.transaction(commands))


def is_outage(exc: BaseException) -> bool:
    """Errors worth retrying: the server is unreachable, restarting or loading its data.

    A wrong password or an untrusted certificate is a connection error, but no outage.
    """
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError)) and not isinstance(
        exc, (AuthenticationError, CertificateError)
    )


class Script:
    """A Lua script from the package's ``lua/`` folder, run by its SHA1 (EVALSHA).

    With ``library``, ``lua/lib.lua`` (helpers shared by several scripts) is
    prepended to it, so it still runs as one script."""

    def __init__(self, name: str, *, library: bool = False) -> None:
        self.name = name
        folder = resources.files("petiole_redis") / "lua"
        self.source = (folder / f"{name}.lua").read_bytes()
        if library:
            self.source = (folder / "lib.lua").read_bytes() + b"\n" + self.source
        self.sha = hashlib.sha1(self.source, usedforsecurity=False).hexdigest()

    def args(self, keys: Sequence[str], argv: Sequence[Any]) -> tuple[Any, ...]:
        return ("EVALSHA", self.sha, len(keys), *keys, *argv)

    def __call__(self, client: Client, keys: Sequence[str], argv: Sequence[Any]) -> Any:
        """Run it; after a server restart (empty script cache) load it and run it again."""
        try:
            return command(client, *self.args(keys, argv))
        except NoScriptError:
            command(client, "SCRIPT", "LOAD", self.source)
            return command(client, *self.args(keys, argv))


class Connector(Closable):
    """A connection pool to one Redis server, and the retry and error policy of one component."""

    def __init__(
        self, target: RedisTarget, *, component: str, error_type: type[PetioleError]
    ) -> None:
        Closable.__init__(self)
        self.target = target
        self.component = component
        self.error_type = error_type
        self.reconnect_timeout_s = target.options.reconnect_timeout_s
        try:
            self.address: Address = address_of(target)
        except ValueError as exc:
            raise error_type(f"{component} URL {target.masked_url!r} is invalid: {exc}") from exc
        self._lock = threading.Lock()
        self.client = PooledClient(self, target.options.max_connections)
        self.outages = OutageTracker(
            logger,
            self.describe(),
            lost="connection lost",
            meanwhile=f"retrying with backoff for up to {self.reconnect_timeout_s:g} s",
        )
        self._own_connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self.fast = FastClient(self)
        # Lost-data detection (see the module docstring).
        self._epoch_key = Keys(target.options.key_prefix).epoch
        self._server_lock = threading.Lock()
        self._check_data = True
        self._run_id: str | None = None
        self._epoch: bytes | None = None
        self.data_generation = 0  # grows by one each time the server is found to have lost its data
        self.data_lost_at: float | None = None  # time.time() when it was last found so

    def describe(self) -> str:
        return f"{self.component} {self.target.masked_url}"

    def connect(self) -> None:
        """Check that the server answers, trying for up to ``startup_timeout_s``
        (a process created while the server restarts still starts), then fail
        with an error naming the URL. A wrong password fails at once."""
        deadline = time.monotonic() + self.target.options.startup_timeout_s
        attempt = 0
        while True:
            try:
                command(self.client, "PING")
                return
            except RedisError as exc:
                delay = backoff_s(attempt)
                attempt += 1
                if is_outage(exc) and time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    continue
                unanswered = is_outage(exc) and not isinstance(exc, HostNotFound)
                hint = " (is redis-server running there?)" if unanswered else ""
                raise self.error_type(
                    f"cannot connect to the {self.describe()}: {error_line(exc)}{hint}"
                ) from exc

    def call(self, what: str, work: Callable[[Client], T], *, until: float | None = None) -> T:
        """Run ``work(client)``, retrying through an outage.

        ``what`` names the operation in errors. ``until`` (monotonic) is the
        caller's own deadline: when the outage lasts until then (the last attempt
        is made at it), :class:`StillDown` is raised instead of sleeping on.
        Raises the component's error type when the outage has lasted
        ``reconnect_timeout_s``, or at once for any other Redis error;
        :class:`Closed` when the component was closed meanwhile.
        """
        client = self.client
        return self._retrying(what, lambda: work(client), until)

    def call_fast(
        self, what: str, work: Callable[[FastClient], T], *, until: float | None = None
    ) -> T:
        """:meth:`call` for the hot path: ``work`` gets the thread's :class:`FastClient`."""
        fast = self.fast
        return self._retrying(what, lambda: work(fast), until)

    def retrying(self, what: str, attempt: Callable[[], T], *, until: float | None = None) -> T:
        """:meth:`call` for work on a connection of the caller's own (``attempt()``)."""
        return self._retrying(what, attempt, until)

    def _retrying(self, what: str, attempt_once: Callable[[], T], until: float | None) -> T:
        try:
            return call_through_outage(
                attempt_once,
                outages=self.outages,
                is_outage=is_outage,
                reason=error_line,
                closed=self._closed,
                limit_s=self.reconnect_timeout_s,
                until=until,
            )
        except DownTooLong as gave_up:
            raise self.error_type(
                f"{self.describe()}: {what}: unreachable for {gave_up.down_for_s:.0f} s "
                f"(reconnect_timeout_s={self.reconnect_timeout_s:g}): {gave_up.reason}"
            ) from gave_up.__cause__
        except RedisError as exc:  # no outage: the server refused the call
            raise self.error_type(f"{self.describe()}: {what}: {error_line(exc)}") from exc

    def outage_s(self) -> float | None:
        """How long the current outage has lasted; None while the server answers."""
        return self.outages.down_for_s()

    def on_connect(self, connection: Connection) -> None:
        """The hook of every new connection: set it up (authenticate, select the
        database), then check the server's data."""
        connection.handshake()
        if self._check_data:
            self._check_server(connection)

    def _check_server(self, connection: Connection) -> None:
        """Note a server that lost its data (see the module docstring). Runs
        inside the connect: a Redis error fails the connect, which the caller's
        retry policy handles like any other."""
        try:
            run_id = _run_id(connection.command("INFO", "server"))
        except ResponseError as exc:
            self._check_data = False
            logger.info(
                "%s: the server refuses INFO (%s); a restart that loses its data "
                "will not be noticed",
                self.describe(),
                exc,
            )
            return
        if run_id is None or run_id == self._run_id:
            return
        with self._server_lock:
            if run_id == self._run_id:
                return
            token = os.urandom(12).hex()
            # A read-only replica refuses the SET: its error is returned, not raised.
            _, epoch = connection.pipeline(
                [("SET", self._epoch_key, token, "NX"), ("GET", self._epoch_key)]
            )
            if isinstance(epoch, ResponseError):
                raise epoch
            run_before, epoch_before = self._run_id, self._epoch
            self._run_id, self._epoch = run_id, epoch
            if run_before is None or epoch == epoch_before:
                return
            self.data_generation += 1
            self.data_lost_at = time.time()
        _report_data_loss(self.target.masked_url, run_before, run_id)

    def note_outage(self, exc: BaseException) -> float:
        """Record a failed attempt made outside :meth:`call` (a pub/sub reader's);
        returns how long the outage has lasted."""
        return self.outages.failed(error_line(exc))

    def close(self) -> None:
        """Close every connection; calls blocked in Redis return (with :class:`Closed`)."""
        if not self._mark_closed():
            return
        with self._lock:
            own = list(self._own_connections)
        for connection in own:
            connection.disconnect()

    def track(self, connection: Connection) -> None:
        """Disconnect ``connection`` (a thread's own, see :class:`FastClient`) on close."""
        with self._lock:
            self._own_connections.add(connection)
        if self._closed.is_set():
            connection.disconnect()

    def new_connection(
        self, *, protocol: int = 2, on_connect: Callable[[Connection], None] | None = None
    ) -> Connection:
        """A connection (not yet connected) whose connect runs ``on_connect``, by
        default this connector's lost-data check."""
        return Connection(self.address, protocol=protocol, on_connect=on_connect or self.on_connect)


def _run_id(info: bytes) -> str | None:
    """The ``run_id`` line of an ``INFO server`` reply."""
    for line in bytes(info).decode(errors="replace").splitlines():
        if line.startswith("run_id:"):
            return line[len("run_id:") :].strip()
    return None


# Servers already reported as having lost their data: (masked URL, new run_id).
# Process-wide because a transport and a result backend on the same server each
# notice the loss, and one line per restart is what an operator needs.
_reported_losses: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def _report_data_loss(masked_url: str, run_before: str, run_after: str) -> None:
    with _reported_lock:
        if (masked_url, run_after) in _reported_losses:
            return
        _reported_losses.add((masked_url, run_after))
    logger.error(
        "redis at %s restarted without its data (run_id %s -> %s): messages and results "
        "stored before are gone",
        masked_url,
        run_before,
        run_after,
    )


def error_line(exc: BaseException) -> str:
    """The error in one line, as outage lines and error messages show it."""
    return f"{type(exc).__name__}: {exc}"
