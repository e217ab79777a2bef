"""Plumbing shared by the SQLite transport and result backend.

* :func:`parse_url` turns a ``sqlite://`` URL plus the user's options into a
  database path and validated :class:`SqliteOptions`.
* :class:`Database` gives each thread its own connection (a ``sqlite3``
  connection must not be used by two threads at once), configured for several
  processes sharing one file, and translates every ``sqlite3`` error into the
  component's own error type.
* :class:`Notifier` lets a waiter in this process wake as soon as another thread
  of this process writes, instead of waiting for its next poll; the doorbells of
  :mod:`petiole._builtins._wakeup` carry the same wake-up to waiters in other
  processes of this machine (a Unix datagram socket per waiting process, in the
  directory ``petiole.db-wake`` beside the file).
* :class:`Wait` is one waiting call's schedule: look, arm the doorbell, look
  again, then sleep until woken or the next poll is due.
* :class:`SqliteComponent` is what the transport and the backend are built on:
  their :class:`Database`, options, location and ``close``.

URL forms (as in SQLAlchemy)::

    sqlite://                    petiole.db in the current working directory
    sqlite:///relative/path.db   relative to the current working directory
    sqlite:////absolute/path.db  an absolute path
    sqlite:///jobs.db?poll_interval_ms=50&busy_timeout_ms=10000

Options (from the configuration; URL query parameters override them):

``notify`` (default ``auto``)
    ``auto``: a write wakes the waiters of every process on this machine at once
    (doorbells, see :mod:`petiole._builtins._wakeup`), and a waiter looks at the
    database again only every ``poll_interval_ms`` in case a write rang no one.
    Where doorbells cannot work they are left out on their own: no Unix
    sockets (Windows), a directory where ``petiole.db-wake`` cannot be created,
    a path too long for a socket address where ``/proc/self/fd`` cannot
    shorten it (not Linux, over about 80 characters). On a
    network file system (NFS, SMB, CephFS... read from the mount table) writers
    on *other* machines cannot ring, so waiters also keep polling from 5 ms up
    to ``poll_interval_ms`` as with ``off``. ``off``: no doorbells; waiters in
    other processes see writes only by polling (5 ms, backing off to
    ``poll_interval_ms``), as earlier releases did. Every process sharing a file
    should use the same setting; one with ``off`` is seen by the others'
    polls only.
``poll_interval_ms`` (default 100)
    The longest a waiting ``reserve`` or ``wait`` sleeps between two looks at
    the database. With ``notify=off`` polls start at 5 ms and back off to this
    cap; writes from this process wake waiters at once either way.
``busy_timeout_ms`` (default 5000)
    How long a write waits for another process's write to finish before failing.
``synchronous`` (default ``full``)
    ``full`` flushes the write-ahead log to disk at every commit, so a published
    message or stored result survives a power loss. ``normal`` flushes only at
    checkpoints: still safe against a crash or kill of any process (and never
    corrupts the file), but the last commits may be lost if the machine itself
    goes down. Choose ``normal`` for throughput when that risk is acceptable.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from petiole._builtins._wakeup import Doorbell, WakeDirectory
from petiole.component_options import build_options, query_options
from petiole.errors import ConfigError, PetioleError, SettingTypeError
from petiole.urls import mask_url

logger = logging.getLogger(__name__)

DEFAULT_FILENAME = "petiole.db"
SCHEME = "sqlite"
SYNCHRONOUS_MODES = ("full", "normal")
NOTIFY_MODES = ("auto", "off")

# How long opening a component waits out a locked file, beyond busy_timeout_ms.
_STARTUP_LOCK_WAIT_S = 60.0
_SCHEMA_NAME = re.compile(r"CREATE\s+(?:TABLE|INDEX)\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.I)
# SQLite's oldest builds allow 999 bound parameters per statement.
MAX_PARAMS = 500
# Retries for the write lock: jittered, from 0.25 ms up to 2 ms apart.
_LOCK_RETRY_FIRST_S = 0.00025
_LOCK_RETRY_CAP_S = 0.002


@dataclass(frozen=True, slots=True)
class SqliteOptions:
    """The user-settable options of both SQLite components (see the module docstring)."""

    poll_interval_ms: int = 100
    busy_timeout_ms: int = 5000
    synchronous: str = "full"
    notify: str = "auto"


@dataclass(frozen=True, slots=True)
class SqliteTarget:
    """Where a SQLite component keeps its data, and how it talks to the file."""

    path: Path
    options: SqliteOptions


def parse_url(url: str, options: Mapping[str, Any], *, component: str) -> SqliteTarget:
    """Parse a ``sqlite://`` URL and merge its query parameters over ``options``.

    The returned path is absolute (a relative one is taken from the current
    working directory now, so a later ``chdir`` does not move the database).
    Raises :class:`~petiole.errors.ConfigError` for a malformed URL, an unknown
    option, a bad option value, a directory that does not exist, or a file or
    directory this process cannot write (:func:`not_writable`).
    """
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unbalanced "[" or "]"
        raise ConfigError(f"{component} URL {shown!r} is malformed ({exc})") from exc
    if parts.scheme != SCHEME or not url.startswith(f"{SCHEME}://"):
        raise ConfigError(f"{component} URL {shown!r} is not a {SCHEME}:// URL")
    if parts.netloc:
        host = urlsplit(shown).netloc.rpartition("@")[2]
        raise ConfigError(
            f"{component} URL {shown!r} names a host ({host!r}), but a SQLite database is "
            f"a local file: use {SCHEME}:///relative/path.db or {SCHEME}:////absolute/path.db"
        )
    if parts.fragment:
        raise ConfigError(
            f"{component} URL {shown!r} has a '#' fragment; percent-encode '#' in file names as %23"
        )
    raw_path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    if raw_path == ":memory:" or raw_path.startswith("file:"):
        raise ConfigError(
            f"{component} URL {shown!r}: an in-memory SQLite database cannot be shared by "
            f"threads and processes; use memory:// for an in-process broker in tests, or a file"
        )
    path = Path.cwd() / (raw_path or DEFAULT_FILENAME)
    if path.is_dir():
        raise ConfigError(f"{component} URL {shown!r} names the directory {path}, not a file")
    if not path.parent.is_dir():
        raise ConfigError(
            f"the directory {path.parent} for the SQLite database of {component} URL {shown!r} "
            f"does not exist; create it first (Petiole does not create directories)"
        )
    merged = dict(options)
    merged.update(query_options(url, component=component))
    built = _build_options(merged, source=f"the options of {component} {shown!r}")
    problem = not_writable(path)
    if problem:
        raise ConfigError(f"{problem}; {_remedy(component)}")
    return SqliteTarget(path, built)


def not_writable(path: Path) -> str | None:
    """Why this process cannot use the SQLite file ``path`` for writing, or None.

    SQLite writes the file and creates ``-wal`` and ``-shm`` files beside it, so
    the directory must be writable too. Judged by this process's effective
    user: root may write a file whose mode says read-only, but not one on a
    read-only file system, and neither may anyone else.
    """
    if not path.parent.is_dir():
        return f"the directory {path.parent} of the SQLite file {path} does not exist"
    if path.exists() and not _may_write(path):
        return f"the SQLite file {path} is read-only"
    if not _may_write(path.parent):
        if path.exists():
            return (
                f"the directory {path.parent} of the SQLite file {path} is read-only "
                f"(SQLite creates {path.name}-wal and {path.name}-shm beside the file)"
            )
        return f"the SQLite file {path} cannot be created: its directory {path.parent} is read-only"
    return None


def _may_write(path: Path) -> bool:
    # faccessat(AT_EACCESS) where it exists, so a process that changed its
    # effective user (a service started as root) is judged as that user.
    effective = os.access in os.supports_effective_ids
    mode = os.W_OK | (os.X_OK if path.is_dir() else 0)
    return os.access(path, mode, effective_ids=effective)


def _remedy(component: str) -> str:
    setting = "backend_url" if "backend" in component else "broker_url"
    return f"make it writable or point {setting} at a writable path"


def _build_options(raw: Mapping[str, Any], *, source: str) -> SqliteOptions:
    built = build_options(SqliteOptions, raw, source=source)
    mode = built.synchronous.lower()
    if mode not in SYNCHRONOUS_MODES:
        raise SettingTypeError(
            "synchronous", source=source, expected="'full' or 'normal'", got=built.synchronous
        )
    notify = built.notify.lower()
    if notify not in NOTIFY_MODES:
        raise SettingTypeError(
            "notify", source=source, expected="'auto' or 'off'", got=built.notify
        )
    if built.poll_interval_ms < 1:
        raise SettingTypeError(
            "poll_interval_ms",
            source=source,
            expected="a whole number of milliseconds >= 1",
            got=built.poll_interval_ms,
        )
    return replace(built, synchronous=mode, notify=notify)


# -- waking waiters in this process -------------------------------------------


class Notifier:
    """A generation counter and a condition: "something was written since you looked".

    A waiter reads :attr:`generation` *before* it looks at the database, then
    calls :meth:`wait` with that value; a :meth:`notify` in between is never lost.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0
        self._waiting = 0

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def waiting(self) -> int:
        """How many threads are blocked in :meth:`wait` right now."""
        return self._waiting

    def notify(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout_s: float) -> None:
        """Block until the generation moves past ``seen``, or ``timeout_s`` passes."""
        with self._condition:
            self._waiting += 1
            try:
                self._condition.wait_for(lambda: self._generation != seen, max(timeout_s, 0.0))
            finally:
                self._waiting -= 1


class _Notifiers:
    """The :class:`Notifier` of each channel of one file (kept apart from
    :class:`_SharedFile` so that a doorbell's thread does not keep that alive)."""

    def __init__(self) -> None:
        self._notifiers: dict[str, Notifier] = {}
        self._lock = threading.Lock()

    def get(self, channel: str) -> Notifier:
        with self._lock:
            return self._notifiers.setdefault(channel, Notifier())

    def notify(self, channel: str) -> None:
        self.get(channel).notify()


class _SharedFile:
    """What every component of this process using one database file shares."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Writers of this process queue here, woken the moment the lock is free,
        # instead of retrying for SQLite's lock against each other.
        self.write_lock = threading.Lock()
        self.notifiers = _Notifiers()
        self._lock = threading.Lock()
        self._users = 0
        # In a list, so the finalizer (which must not hold self) sees a late one.
        self._wake: list[WakeDirectory] = []
        weakref.finalize(self, _close_wake, self._wake)

    def notifier(self, channel: str) -> Notifier:
        return self.notifiers.get(channel)

    def wake(self) -> WakeDirectory:
        """The doorbells of this file (opened on first use)."""
        with self._lock:
            if not self._wake:
                self._wake.append(WakeDirectory(self.path, self.notifiers.notify))
            return self._wake[0]

    def attach(self) -> None:
        with self._lock:
            self._users += 1

    def detach(self) -> None:
        """One :class:`Database` less; the last one closes the doorbells."""
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            wake = list(self._wake)
            self._wake.clear()
        _close_wake(wake)

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's doorbells, leaving its files alone."""
        for wake in self._wake:
            wake.forget_after_fork()
        self._wake.clear()


def _close_wake(wake: list[WakeDirectory]) -> None:
    for directory in wake:
        directory.close()


_shared_files: weakref.WeakValueDictionary[str, _SharedFile] = weakref.WeakValueDictionary()
_shared_files_lock = threading.Lock()


def _reset_shared_files_in_child() -> None:
    # A lock held by another thread at fork() would stay held forever in the child.
    global _shared_files, _shared_files_lock
    for shared in list(_shared_files.values()):
        shared.forget_after_fork()
    _shared_files = weakref.WeakValueDictionary()
    _shared_files_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_shared_files_in_child)


def _shared_file(path: Path) -> _SharedFile:
    with _shared_files_lock:
        return _shared_file_unlocked(path)


def _shared_file_unlocked(path: Path) -> _SharedFile:
    key = os.path.normcase(os.path.realpath(path))
    shared = _shared_files.get(key)
    if shared is None:
        shared = _SharedFile(path)
        _shared_files[key] = shared
    return shared


# -- connections ----------------------------------------------------------------


class _Connection(sqlite3.Connection):
    """A plain connection that can be weakly referenced (the base class cannot)."""


# Connections inherited through fork() belong to the parent and must not be used
# in the child (SQLite's own advice); the child opens its own, and keeps the old
# ones referenced so that it never runs SQLite's close-time cleanup on them.
_inherited_connections: list[sqlite3.Connection] = []


class Database:
    """One SQLite file, used from any number of threads of this process.

    Each thread gets its own connection on first use; a thread's connection is
    closed when the thread ends or when :meth:`close` is called. Reads run in
    autocommit mode (each statement sees the latest commit; in WAL mode readers
    never block the writer). Writes run in ``BEGIN IMMEDIATE`` transactions, so
    a read-then-write never has to upgrade its lock and can never deadlock.
    """

    def __init__(
        self,
        path: Path,
        options: SqliteOptions,
        *,
        component: str,
        error_type: type[PetioleError],
        schema: Sequence[str],
        channel: str,
    ) -> None:
        self.path = path
        self.options = options
        self._component = component
        self._error_type = error_type
        self._channel = channel
        self._shared = _shared_file(path)
        self._shared.attach()
        self.notifier = self._shared.notifier(channel)
        """Wakes this process's waiters on ``channel`` when another of its threads writes."""
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._connections_lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        self._ensure_schema(component, schema)

    def _ensure_schema(self, component: str, schema: Sequence[str]) -> None:
        """Create the tables unless present. Creating them needs the write lock; a
        file that already has them (the usual case, and the only one when many
        workers start at once) needs none. A file locked at start-up (several
        processes opening it and switching it to WAL together on a busy machine)
        is waited for up to ``_STARTUP_LOCK_WAIT_S``, not only ``busy_timeout_ms``."""
        wanted = {m.group(1) for m in map(_SCHEMA_NAME.search, schema) if m}
        deadline = time.monotonic() + _STARTUP_LOCK_WAIT_S
        while True:
            try:
                with self.read(f"look for the {component} tables") as conn:
                    present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
                if not wanted <= present:
                    with self.write(f"create the {component} tables") as conn:
                        for statement in schema:
                            conn.execute(statement)
                return
            except PetioleError as exc:
                cause = exc.__cause__
                locked = isinstance(cause, sqlite3.OperationalError) and (
                    "locked" in str(cause) or "busy" in str(cause)
                )
                if not locked or time.monotonic() >= deadline:
                    raise
                logger.warning("%s; still trying at start-up", exc)
                time.sleep(0.1)

    @property
    def closed(self) -> bool:
        return self._closed

    def notifier_for(self, channel: str) -> Notifier:
        """The notifier of another ``channel`` of this file (the transport's
        broadcasts beside its messages). Ask each time: a fork renews it."""
        if self._pid != os.getpid():
            self._forget_inherited_connections()
        return self._shared.notifier(channel)

    def notify(self, channel: str | None = None) -> None:
        """Wake the waiters on ``channel`` (this component's by default) of this
        process and, unless ``notify=off``, of the other processes of this
        machine. Call it after the commit of what they wait for."""
        name = channel or self._channel
        self.notifier_for(name).notify()
        if self.options.notify != "off":
            self._shared.wake().ring(name)

    def doorbell(self, channel: str) -> tuple[Doorbell | None, bool]:
        """This process's doorbell of ``channel`` (None with ``notify=off`` or where
        doorbells cannot work), and whether every writer rings it (False on a
        network file system: writers on other machines cannot)."""
        if self.options.notify == "off" or self._closed:
            return None, False
        if self._pid != os.getpid():
            self._forget_inherited_connections()
        wake = self._shared.wake()
        return wake.doorbell(channel), wake.complete

    @contextmanager
    def read(self, action: str) -> Iterator[sqlite3.Connection]:
        """This thread's connection, for autocommit reads; errors name ``action``.

        Fetch results with ``fetchall()`` (never leave a cursor half read: an
        unfinished statement keeps its read snapshot open).
        """
        with self._translated(action):
            yield self._connection()

    @contextmanager
    def write(self, action: str, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction, committed when the block ends without error.

        ``durable=False`` skips the flush to disk at this commit even with
        ``synchronous=full``, for writes whose loss in a power cut only makes a
        message come back (a claim, an ack, a lease extended: at least once
        either way). They still survive any crash or kill of a process, and the
        next durable commit flushes them too (the log is replayed in order).
        """
        with self._translated(action):
            conn = self._connection()  # first: after a fork it renews self._shared
            relaxed = not durable and self.options.synchronous == "full"
            with self._shared.write_lock:
                if relaxed:
                    conn.execute("PRAGMA synchronous = NORMAL")
                try:
                    self._begin_immediate(conn)
                    try:
                        yield conn
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                finally:
                    if relaxed:
                        conn.execute("PRAGMA synchronous = FULL")

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, retrying every millisecond or so until busy_timeout_ms.

        SQLite's own busy handler retries in steps growing to 100 ms. A process
        that writes in a tight loop (a worker draining a backlog) frees the lock
        only for moments between its transactions, so those coarse retries miss
        them all and other processes starve; short jittered retries find them.
        """
        deadline = time.monotonic() + self.options.busy_timeout_ms / 1000
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            for delay_s in poll_delays(_LOCK_RETRY_FIRST_S, _LOCK_RETRY_CAP_S):
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(random.uniform(0, delay_s))
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self.options.busy_timeout_ms:d}")

    def close(self) -> None:
        """Close every connection this object opened. Calling it twice is harmless.

        Call it once no other thread is using the component: a thread still
        inside a call may see it fail with the component's error.
        """
        with self._connections_lock:
            was_closed, self._closed = self._closed, True
            connections = list(self._connections)
            self._connections = weakref.WeakSet()
        for conn in connections:
            conn.close()
        if not was_closed:
            self._shared.detach()

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error_type(self._describe(action, exc)) from exc

    def _describe(self, action: str, exc: sqlite3.Error) -> str:
        problem = not_writable(self.path) if _refused_write(exc) else None
        if problem is None and "readonly database" in str(exc):
            problem = f"the SQLite file {self.path} is read-only"
        if problem is not None:
            return (
                f"{self._component} could not {action}: {problem} ({exc}); "
                f"{_remedy(self._component)}"
            )
        message = f"{self._component} could not {action} in {self.path}: {exc}"
        if "locked" in str(exc) or "busy" in str(exc):
            message += (
                f" (another process held the write lock for longer than busy_timeout_ms="
                f"{self.options.busy_timeout_ms}; raise that option or look for a long transaction)"
            )
        return message

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._forget_inherited_connections()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not self._closed:
            return conn
        with self._connections_lock:
            if self._closed:
                raise self._error_type(f"the {self._component} for {self.path} is closed")
            conn = self._connect()
            self._connections.add(conn)
        self._local.conn = conn
        return conn

    def _connect(self) -> _Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self.options.busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # only close() touches another thread's connection
            factory=_Connection,
        )
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
            if str(mode).lower() != "wal":
                logger.warning(
                    "%s: %s stays in %s journal mode (WAL is unavailable, e.g. on a network "
                    "file system); readers and writers will block each other",
                    self._component,
                    self.path,
                    mode,
                )
            # Validated to be one of SYNCHRONOUS_MODES, so formatting it in is safe.
            conn.execute(f"PRAGMA synchronous = {self.options.synchronous.upper()}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _forget_inherited_connections(self) -> None:
        # Our own locks may have been held by another thread at fork(); the
        # registry lock is new in the child (see _reset_shared_files_in_child).
        with _shared_files_lock:
            if self._pid == os.getpid():
                return  # another thread of the child got here first
            _inherited_connections.extend(self._connections)
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                _inherited_connections.append(conn)
            self._connections = weakref.WeakSet()
            self._connections_lock = threading.Lock()
            self._local = threading.local()
            self._shared = _shared_file_unlocked(self.path)
            if not self._closed:
                self._shared.attach()
            self.notifier = self._shared.notifier(self._channel)
            self._pid = os.getpid()


def _refused_write(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed because it may not write the file or its directory
    (SQLITE_READONLY and its variants, or SQLITE_CANTOPEN)."""
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
        return True
    text = str(exc)
    return "readonly database" in text or "unable to open database file" in text


def poll_delays(first_s: float, cap_s: float) -> Iterator[float]:
    """Sleep lengths between polls: ``first_s``, doubling, never above ``cap_s``."""
    delay = min(first_s, cap_s)
    while True:
        yield delay
        delay = min(delay * 2, cap_s)


class Wait:
    """One waiting call's schedule (a ``reserve``, a result ``wait``, a
    subscription): what to do each time a look at the database found nothing.

    Call :meth:`before_look` before each look and :meth:`pause` after one that
    found nothing; use it as a context manager (leaving it disarms). The first
    :meth:`pause` arms this process's doorbell and returns at once, so that the
    next look is the one no write can slip past (see :mod:`._wakeup`); later
    ones sleep until a write of any process wakes it, or the next poll is due:
    every ``poll_interval_ms`` when every writer rings, else from
    ``first_poll_s`` doubling up to it.
    """

    def __init__(self, db: Database, channel: str, *, first_poll_s: float, cap_s: float) -> None:
        self._db = db
        self._channel = channel
        self._first_poll_s = first_poll_s
        self._cap_s = cap_s
        self._rung = False  # whether every write wakes this wait
        self._delays = poll_delays(first_poll_s, cap_s)
        self._armed: AbstractContextManager[None] | None = None
        self._tried_arming = False
        self._notifier = db.notifier_for(channel)
        self._seen = self._notifier.generation

    def __enter__(self) -> Wait:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def before_look(self) -> None:
        self._notifier = self._db.notifier_for(self._channel)
        self._seen = self._notifier.generation

    def pause(self, longest_s: float) -> None:
        """Block until a write may have happened or a poll is due; ``longest_s`` at most."""
        if not self._tried_arming:
            self._tried_arming = True
            doorbell, every_writer_rings = self._db.doorbell(self._channel)
            if doorbell is not None:
                self._armed = doorbell.armed()
                self._armed.__enter__()
                self._rung = every_writer_rings
                self.found()
                return  # look again now: a write since the last look rang no one
        self._notifier.wait(self._seen, min(next(self._delays), max(longest_s, 0.0)))

    def found(self) -> None:
        """Something was found: polls start again from the first delay."""
        if self._rung:
            self._delays = itertools.repeat(self._cap_s)
        else:
            self._delays = poll_delays(self._first_poll_s, self._cap_s)

    def close(self) -> None:
        """Disarm. Calling it twice is harmless."""
        armed, self._armed = self._armed, None
        if armed is not None:
            armed.__exit__(None, None, None)


class SqliteComponent:
    """The part of a SQLite transport or result backend that is about its file.

    A subclass names its ``component`` (for messages), ``error_type``, ``schema``
    and notifier ``channel``; it gets ``self._db`` (a :class:`Database` with its
    tables created), ``path``, ``options``, ``location`` and ``close``.
    ``first_poll_delay_s`` is the first sleep of a polling wait (later ones
    double up to ``poll_interval_ms``: :meth:`_wait`).
    """

    component: ClassVar[str]
    error_type: ClassVar[type[PetioleError]]
    schema: ClassVar[Sequence[str]]
    channel: ClassVar[str]

    def __init__(
        self, path: Path, options: SqliteOptions | None, *, first_poll_delay_s: float
    ) -> None:
        self._options = options or SqliteOptions()
        self._first_poll_delay_s = first_poll_delay_s
        self._db = Database(
            path,
            self._options,
            component=self.component,
            error_type=self.error_type,
            schema=self.schema,
            channel=self.channel,
        )

    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def options(self) -> SqliteOptions:
        return self._options

    @property
    def location(self) -> str:
        """Where the data lives, for logs: the file's absolute URL."""
        return f"{SCHEME}:///{self._db.path}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._db.path)!r})"

    def _wait(self, channel: str | None = None) -> Wait:
        """The schedule of one waiting call on ``channel`` (this component's by default)."""
        return Wait(
            self._db,
            channel or self.channel,
            first_poll_s=self._first_poll_delay_s,
            cap_s=self._options.poll_interval_ms / 1000,
        )

    def close(self) -> None:
        """Close the connections and wake this process's waiters, which return
        what they have. Calling it twice is harmless."""
        if self._db.closed:
            return
        self._db.close()
        self._db.notifier.notify()
