"""The embedded SQLite result backend: results in one file, shared by processes on one machine.

It may share the transport's file (the tables differ). Expiry is by wall clock:
a row whose ``expires_at`` has passed reads as absent at once, and is deleted
later by a sweep that a ``store`` runs at most once per ``sweep_interval_s``
per process. ``wait`` wakes at once when any process of this machine stores a
result (the doorbells of :mod:`petiole._builtins._wakeup`), and looks again at
least every ``poll_interval_ms`` in case a store rang no one; with
``notify=off`` only stores of this process wake it, and it polls from 5 ms
backing off to ``poll_interval_ms``.

A set is a row in ``petiole_sets`` (its size and expiry) plus one row per
member, so an add costs the same whatever the set's size and refreshes the
whole set's expiry with one write.

URL and options: see :mod:`petiole._builtins._sqlite`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from petiole._builtins._sqlite import MAX_PARAMS, SqliteComponent, SqliteOptions, parse_url
from petiole.backend import BackendCapabilities, ResultBackend, ResultRecord
from petiole.errors import PetioleError, ResultBackendError

logger = logging.getLogger(__name__)

COMPONENT = "sqlite result backend"

_SCHEMA = (
    # expires_at: wall clock seconds, NULL = keep. The payload comes last so that
    # reading the other columns never touches a large payload's overflow pages.
    """
    CREATE TABLE IF NOT EXISTS petiole_results (
        task_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        content_type TEXT NOT NULL,
        traceback TEXT,
        date_done REAL,
        meta TEXT NOT NULL,
        expires_at REAL,
        payload BLOB NOT NULL
    )
    """,
    # Serves the sweep of expired results.
    """
    CREATE INDEX IF NOT EXISTS petiole_results_by_expiry
    ON petiole_results (expires_at) WHERE expires_at IS NOT NULL
    """,
    """
    CREATE TABLE IF NOT EXISTS petiole_sets (
        key TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        expires_at REAL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS petiole_set_members (
        key TEXT NOT NULL,
        member TEXT NOT NULL,
        PRIMARY KEY (key, member)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS petiole_counters (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL,
        expires_at REAL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS petiole_claims (
        key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at REAL
    )
    """,
    # Leases always expire; a released or expired one is deleted or overwritten.
    """
    CREATE TABLE IF NOT EXISTS petiole_leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
)

# Params: task_id, state, content_type, traceback, date_done, meta, expires_at, payload.
# The last write wins, whole record at once.
_STORE = """
INSERT OR REPLACE INTO petiole_results
    (task_id, state, content_type, traceback, date_done, meta, expires_at, payload)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""

# Params: now, then the task ids (format in as many "?" as there are ids).
_GET = """
SELECT task_id, state, content_type, traceback, date_done, meta, payload
FROM petiole_results
WHERE (expires_at IS NULL OR expires_at > ?) AND task_id IN ({marks})
"""

# Params: the task ids.
_FORGET = "DELETE FROM petiole_results WHERE task_id IN ({marks})"

# Params: key.
_SET_GET = "SELECT size, expires_at FROM petiole_sets WHERE key = ?"
# Params: key, member. Changes one row when the member is new, none otherwise.
_SET_ADD_MEMBER = "INSERT OR IGNORE INTO petiole_set_members (key, member) VALUES (?, ?)"
# Params: key, size, expires_at.
_SET_PUT = "INSERT OR REPLACE INTO petiole_sets (key, size, expires_at) VALUES (?, ?, ?)"
# Params: the keys.
_SET_DELETE_MEMBERS = "DELETE FROM petiole_set_members WHERE key IN ({marks})"
_SET_DELETE = "DELETE FROM petiole_sets WHERE key IN ({marks})"

# Params: key.
_COUNTER_GET = "SELECT value, expires_at FROM petiole_counters WHERE key = ?"
# Params: key, value, expires_at.
_COUNTER_PUT = "INSERT OR REPLACE INTO petiole_counters (key, value, expires_at) VALUES (?, ?, ?)"
# Params: the keys.
_COUNTER_DELETE = "DELETE FROM petiole_counters WHERE key IN ({marks})"
# Params: key.
_CLAIM_GET = "SELECT owner, expires_at FROM petiole_claims WHERE key = ?"
# Params: key, owner, expires_at.
_CLAIM_PUT = "INSERT OR REPLACE INTO petiole_claims (key, owner, expires_at) VALUES (?, ?, ?)"
# Params: the keys.
_CLAIM_DELETE = "DELETE FROM petiole_claims WHERE key IN ({marks})"
# Params: now, then the keys. Marks live beside claims (a key is one or the other).
_MARKS_GET = """
SELECT key, owner FROM petiole_claims
WHERE (expires_at IS NULL OR expires_at > ?) AND key IN ({marks})
"""
# Params: name.
_LEASE_GET = "SELECT owner, expires_at FROM petiole_leases WHERE name = ?"
# Params: name, owner, expires_at.
_LEASE_PUT = "INSERT OR REPLACE INTO petiole_leases (name, owner, expires_at) VALUES (?, ?, ?)"
# Params: name.
_LEASE_DELETE = "DELETE FROM petiole_leases WHERE name = ?"

# Params: now, batch size. One bounded batch, so a large backlog of expired
# results never holds the write lock for long.
_SWEEP_RESULTS = """
DELETE FROM petiole_results WHERE rowid IN (
    SELECT rowid FROM petiole_results WHERE expires_at <= ? LIMIT ?
)
"""
# Params: now. Members first, while their set's row still says it expired.
_SWEEP_SET_MEMBERS = """
DELETE FROM petiole_set_members
WHERE key IN (SELECT key FROM petiole_sets WHERE expires_at <= ?)
"""
_SWEEP_SETS = "DELETE FROM petiole_sets WHERE expires_at <= ?"
_SWEEP_COUNTERS = "DELETE FROM petiole_counters WHERE expires_at <= ?"
_SWEEP_CLAIMS = "DELETE FROM petiole_claims WHERE expires_at <= ?"

_FIRST_POLL_DELAY_S = 0.005
_SWEEP_INTERVAL_S = 60.0
_SWEEP_BATCH = 1000


class SqliteBackend(SqliteComponent):
    """A :class:`~petiole.backend.ResultBackend` and :class:`~petiole.backend.Coordination`
    on a SQLite file (see the module docstring).

    ``first_poll_delay_s``: the first sleep of a polling ``wait`` (later ones
    double up to ``poll_interval_ms``). ``sweep_interval_s``: the least time
    between two sweeps of expired rows by this object (0 = at every store).
    """

    # push_wait stays False although doorbells wake wait(): a store from another
    # machine on a shared file is only seen by polling, and a caller's get(interval=)
    # keeps its meaning (how often to read the store).
    capabilities = BackendCapabilities(push_wait=False, max_result_bytes=None)

    component = COMPONENT
    error_type = ResultBackendError
    schema = _SCHEMA
    channel = "results"

    def __init__(
        self,
        path: Path,
        options: SqliteOptions | None = None,
        *,
        first_poll_delay_s: float = _FIRST_POLL_DELAY_S,
        sweep_interval_s: float = _SWEEP_INTERVAL_S,
    ) -> None:
        self._sweep_interval_s = sweep_interval_s
        self._next_sweep_at = 0.0  # monotonic; the first store sweeps
        super().__init__(path, options, first_poll_delay_s=first_poll_delay_s)

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        """Replace the record of ``record.task_id``; wakes this process's waiters.

        Raises :class:`~petiole.errors.ResultBackendError` if ``record.meta`` is
        not JSON-safe.
        """
        meta = _meta_json(record)
        now = time.time()
        row = (
            record.task_id,
            record.state,
            record.content_type,
            record.traceback,
            record.date_done,
            meta,
            _expires_at(now, ttl_s),
            bytes(record.payload),
        )
        with self._db.write(f"store the result of task {record.task_id!r}") as conn:
            conn.execute(_STORE, row)
        self._db.notify()
        self._maybe_sweep()

    def get(self, task_id: str) -> ResultRecord | None:
        return self.get_many([task_id]).get(task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """Unexpired records of those ids, ``len(task_ids) / 500`` reads at most."""
        found: dict[str, ResultRecord] = {}
        with self._db.read("read results") as conn:
            now = time.time()
            for chunk in _chunks(list(dict.fromkeys(task_ids))):
                sql = _GET.format(marks=_marks(chunk))
                for task_id, state, content_type, tb, date_done, meta, payload in conn.execute(
                    sql, (now, *chunk)
                ).fetchall():
                    found[task_id] = ResultRecord(
                        task_id=task_id,
                        state=state,
                        payload=payload,
                        content_type=content_type,
                        traceback=tb,
                        date_done=date_done,
                        meta=json.loads(meta),
                    )
        return found

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        """Wait until every id has a ready record or ``timeout_s`` passes.

        A store by any process of this machine wakes the wait at once (with
        ``notify=off``, only one by this process; others are seen at the next
        poll, at most ``poll_interval_ms`` later). Returns early with what it
        found if the backend is closed meanwhile.
        """
        pending = list(dict.fromkeys(task_ids))
        ready: dict[str, ResultRecord] = {}
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._wait() as wait:
            while pending:
                wait.before_look()
                for task_id, record in self.get_many(pending).items():
                    if record.ready:
                        ready[task_id] = record
                pending = [t for t in pending if t not in ready]
                if not pending:
                    break
                remaining = float("inf")
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                wait.pause(remaining)
                if self._db.closed:
                    break
        return ready

    def forget(self, task_ids: Sequence[str]) -> None:
        with self._db.write("forget results") as conn:
            for chunk in _chunks(list(dict.fromkeys(task_ids))):
                conn.execute(_FORGET.format(marks=_marks(chunk)), chunk)

    def set_add(self, key: str, member: str, *, ttl_s: float | None) -> int:
        """Add ``member`` and return the size, in one transaction; an expired set starts empty."""
        with self._db.write(f"add to the set {key!r}") as conn:
            now = time.time()
            rows = conn.execute(_SET_GET, (key,)).fetchall()
            size = 0
            if rows and _expired(rows[0][1], now):
                conn.execute(_SET_DELETE_MEMBERS.format(marks="?"), (key,))
            elif rows:
                size = int(rows[0][0])
            size += conn.execute(_SET_ADD_MEMBER, (key, member)).rowcount
            conn.execute(_SET_PUT, (key, size, _expires_at(now, ttl_s)))
        return size

    def incr(self, key: str, amount: int = 1, *, ttl_s: float | None) -> int:
        """Add ``amount`` in one transaction; an expired counter starts at 0.

        Every increment sets the counter's expiry to ``ttl_s`` from now.
        """
        with self._db.write(f"increment the counter {key!r}") as conn:
            now = time.time()
            rows = conn.execute(_COUNTER_GET, (key,)).fetchall()
            value = int(rows[0][0]) if rows and not _expired(rows[0][1], now) else 0
            value += amount
            conn.execute(_COUNTER_PUT, (key, value, _expires_at(now, ttl_s)))
        return value

    def claim(self, key: str, owner: str, *, ttl_s: float | None) -> str:
        """The current owner of ``key``, made ``owner`` first if there is none (one transaction)."""
        with self._db.write(f"claim {key!r}") as conn:
            now = time.time()
            rows = conn.execute(_CLAIM_GET, (key,)).fetchall()
            if rows and not _expired(rows[0][1], now):
                return str(rows[0][0])
            conn.execute(_CLAIM_PUT, (key, owner, _expires_at(now, ttl_s)))
        return owner

    def put_mark(self, key: str, value: str, *, ttl_s: float | None) -> None:
        with self._db.write(f"set the mark {key!r}") as conn:
            conn.execute(_CLAIM_PUT, (key, value, _expires_at(time.time(), ttl_s)))

    def get_marks(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._db.read("read marks") as conn:
            now = time.time()
            for chunk in _chunks(list(dict.fromkeys(keys))):
                rows = conn.execute(_MARKS_GET.format(marks=_marks(chunk)), (now, *chunk))
                found.update((str(key), str(value)) for key, value in rows.fetchall())
        return found

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """One write transaction: free, expired (by this machine's wall clock) or
        ``owner``'s lease becomes ``owner``'s for ``ttl_s``."""
        with self._db.write(f"acquire the lease {name!r}") as conn:
            now = time.time()
            rows = conn.execute(_LEASE_GET, (name,)).fetchall()
            if rows and rows[0][0] != owner and not _expired(rows[0][1], now):
                return False
            conn.execute(_LEASE_PUT, (name, owner, now + ttl_s))
        return True

    def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        with self._db.write(f"renew the lease {name!r}") as conn:
            now = time.time()
            rows = conn.execute(_LEASE_GET, (name,)).fetchall()
            if not rows or rows[0][0] != owner or _expired(rows[0][1], now):
                return False
            conn.execute(_LEASE_PUT, (name, owner, now + ttl_s))
        return True

    def release_lease(self, name: str, owner: str) -> bool:
        with self._db.write(f"release the lease {name!r}") as conn:
            rows = conn.execute(_LEASE_GET, (name,)).fetchall()
            if not rows or rows[0][0] != owner or _expired(rows[0][1], time.time()):
                return False
            conn.execute(_LEASE_DELETE, (name,))
        return True

    def delete_keys(self, keys: Sequence[str]) -> None:
        with self._db.write("delete sets, counters, claims and marks") as conn:
            for chunk in _chunks(list(dict.fromkeys(keys))):
                marks = _marks(chunk)
                for statement in (
                    _SET_DELETE_MEMBERS,
                    _SET_DELETE,
                    _COUNTER_DELETE,
                    _CLAIM_DELETE,
                ):
                    conn.execute(statement.format(marks=marks), chunk)

    def _maybe_sweep(self) -> None:
        if time.monotonic() < self._next_sweep_at:
            return
        self._next_sweep_at = time.monotonic() + self._sweep_interval_s
        try:
            self.sweep()
        except PetioleError as exc:
            # The record is stored; a failed clean-up only delays it to the next sweep.
            logger.warning("%s: sweeping expired rows failed, will retry: %s", COMPONENT, exc)

    def sweep(self) -> int:
        """Delete every expired result, set and counter now; return how many results went."""
        deleted = 0
        while True:
            with self._db.write("delete expired results") as conn:
                batch = conn.execute(_SWEEP_RESULTS, (time.time(), _SWEEP_BATCH)).rowcount
            deleted += batch
            if batch < _SWEEP_BATCH:
                break
        with self._db.write("delete expired sets and counters") as conn:
            now = time.time()
            for statement in (_SWEEP_SET_MEMBERS, _SWEEP_SETS, _SWEEP_COUNTERS, _SWEEP_CLAIMS):
                conn.execute(statement, (now,))
        return deleted


def _meta_json(record: ResultRecord) -> str:
    try:
        return json.dumps(dict(record.meta), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ResultBackendError(
            f"the meta of task {record.task_id!r} is not JSON-safe ({exc}); "
            f"meta may hold only JSON types"
        ) from exc


def _expires_at(now: float, ttl_s: float | None) -> float | None:
    return None if ttl_s is None else now + ttl_s


def _expired(expires_at: float | None, now: float) -> bool:
    return expires_at is not None and expires_at <= now


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), MAX_PARAMS):
        yield items[start : start + MAX_PARAMS]


def _marks(chunk: Sequence[object]) -> str:
    return ", ".join("?" * len(chunk))


def create_backend(url: str, options: Mapping[str, Any]) -> ResultBackend:
    """Build a :class:`SqliteBackend` for a ``sqlite://`` URL (see :mod:`._sqlite`)."""
    target = parse_url(url, options, component=COMPONENT)
    return SqliteBackend(target.path, target.options)
