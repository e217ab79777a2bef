"""The Cassandra result backend.

A record is one row per task id in ``<keyspace>.<table>`` (see cql/schema.cql),
written whole with one prepared ``INSERT ... USING TTL ?``: idempotent, so a
redelivered task that stores its result twice leaves one correct row, and a
record stored without a ttl replaces one that had it. ``get_many`` reads its ids
concurrently: ``IN`` lists of 100 ids, sent together with the driver's async
execution (``read_concurrency`` requests in flight).

**wait polls.** Cassandra has no notifications, so ``wait`` reads the ids still
pending with a backoff from 10 ms, growing by half each round, capped at
``wait_poll_max_s`` (0.5 s): a result is seen at most that long (plus one read)
after it is stored. It polls only the oldest ``WAIT_WINDOW`` pending ids and moves
on, without sleeping, as soon as they are all ready (see :meth:`CassandraBackend.wait`).

**Sets, counters and claims use lightweight transactions (Paxos), never
Cassandra counters**, which can neither carry a TTL nor be retried safely (an
increment whose reply was lost may have been applied). Each one is exactly once
even when a call is retried after an unknown outcome:

* ``set_add``: one row per member in the set's partition and the size in a
  static column, both written by one conditional batch (``INSERT member IF NOT
  EXISTS`` + ``UPDATE size IF size = <read>``); a retry finds its member present
  and returns the size without counting it again.
* ``incr``: compare-and-set of a bigint (``IF value = <read>``) that also records
  the increment's token; after an unknown outcome a serial read of the token says
  whether it was applied.
* ``claim``: ``INSERT ... IF NOT EXISTS``; the reply of a failed insert names the owner.

Marks are plain ``INSERT ... USING TTL`` rows of the claims table, read with
``IN`` lists. **Leases** (the ``_leases`` table) are lightweight transactions
too, expired by the row's TTL on Cassandra's clock (whole seconds, rounded up):
acquire is ``INSERT ... IF NOT EXISTS`` and, when the reply names the caller as
the holder, ``UPDATE ... USING TTL ? ... IF owner = ?``; renew is that update;
release is ``DELETE ... IF owner = ?``. A release retried after an unknown
outcome may answer False although it released.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from petiole.backend import BackendCapabilities, ResultBackend, ResultRecord
from petiole.errors import ResultBackendError, ResultTooLarge
from petiole_cassandra._cql import IDS_PER_READ, Statements, schema_statements
from petiole_cassandra._driver import Driver, Prepared, Rows, is_cas_timeout
from petiole_cassandra._options import MAX_TTL_S, parse_url
from petiole_cassandra._session import Closed, Session

__all__ = ["CassandraBackend", "ResultTooLarge", "SchemaMissing", "create_backend"]

COMPONENT = "cassandra result backend"

T = TypeVar("T")

_POLL_FIRST_S = 0.01
_POLL_GROWTH = 1.5
#: How many of the pending ids one round of ``wait`` reads (five ``IN`` lists).
WAIT_WINDOW = 5 * IDS_PER_READ
# Lightweight transactions that lose a race are retried at once; one whose
# outcome is unknown (a Paxos timeout under contention) is checked and retried
# this many times before the call gives up.
_CAS_TIMEOUT_RETRIES = 20


class SchemaMissing(ResultBackendError):
    """The keyspace or a table does not exist and ``create_schema`` is off."""


class CassandraBackend:
    """A :class:`~petiole.backend.ResultBackend` and :class:`~petiole.backend.Coordination`
    on Apache Cassandra (see the module docstring)."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        target = parse_url(url, options, component=COMPONENT)
        self.target = target
        self.options = target.options
        self.capabilities = BackendCapabilities(
            push_wait=False, max_result_bytes=target.options.max_result_bytes
        )
        self.cql = Statements(target.keyspace, target.options.table)
        self._session = Session(target, component=COMPONENT)
        self._session.connect()
        try:
            self._session.call("check the schema", self._ensure_schema)
            self._session.call("prepare statements", self._prepare)
        except BaseException:
            self._session.close()
            raise

    def __repr__(self) -> str:
        return f"CassandraBackend({self.target.masked_url!r})"

    # -- start-up ------------------------------------------------------------------

    def _ensure_schema(self, driver: Driver) -> None:
        tables = driver.tables(self.target.keyspace)
        missing = [t for t in self.cql.table_names if tables is None or t not in tables]
        if not missing:
            return
        statements = schema_statements(
            self.target.keyspace, self.options.table, self.target.replication_cql()
        )
        if not self.options.create_schema:
            what = (
                f"keyspace {self.target.keyspace!r}"
                if tables is None
                else "table(s) " + ", ".join(f"{self.target.keyspace}.{t}" for t in missing)
            )
            raise SchemaMissing(
                f"the {COMPONENT} {self.target.masked_url} needs {what}, which do(es) not "
                "exist, and create_schema is off. Run this CQL (cqlsh -f), or set "
                "create_schema=true:\n\n" + "\n".join(statements)
            )
        for statement in statements:
            driver.execute_ddl(statement)

    def _prepare(self, driver: Driver) -> None:
        write, read = self.options.write_consistency, self.options.read_consistency
        serial = self.options.serial_consistency
        cql = self.cql
        self._store = driver.prepare(cql.store, consistency=write)
        self._get = driver.prepare(cql.get, consistency=read)
        self._forget = driver.prepare(cql.forget, consistency=write)
        self._set_size = driver.prepare(cql.set_size, consistency=read)
        self._set_add = driver.prepare(cql.set_add, consistency=write)
        self._counter_value = driver.prepare(cql.counter_value, consistency=read)
        self._counter_token = driver.prepare(cql.counter_token, consistency=serial)
        self._incr = driver.prepare(cql.incr, consistency=write)
        self._claim = driver.prepare(cql.claim, consistency=write)
        self._put_mark = driver.prepare(cql.put_mark, consistency=write)
        self._get_marks = driver.prepare(cql.get_marks, consistency=read)
        self._lease_take = driver.prepare(cql.lease_take, consistency=write)
        self._lease_renew = driver.prepare(cql.lease_renew, consistency=write)
        self._lease_release = driver.prepare(cql.lease_release, consistency=write)
        self._deletes = [
            driver.prepare(statement, consistency=write)
            for statement in (cql.delete_set, cql.delete_counter, cql.delete_claim)
        ]

    # -- records ---------------------------------------------------------------------

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        """Replace the record (one idempotent ``INSERT ... USING TTL``).

        Raises :class:`~petiole.errors.ResultTooLarge` for a payload over
        ``max_result_bytes`` or a record the server refuses for its size,
        and :class:`~petiole.errors.ResultBackendError` if ``record.meta`` is not
        JSON-safe or the cluster stays unreachable.
        """
        meta = _meta_json(record)
        limit = self.options.max_result_bytes
        if len(record.payload) > limit:
            raise ResultTooLarge(
                len(record.payload),
                limit,
                COMPONENT,
                f"task {record.task_id}; Cassandra refuses a write over its max_mutation_size, "
                "by default 16 MiB: return a smaller value, or store it elsewhere and return "
                "a reference",
            )
        size = len(record.payload) + len((record.traceback or "").encode()) + len(meta.encode())
        if self.options.result_ttl_s is not None:
            ttl_s = self.options.result_ttl_s or None
        params = (
            record.task_id,
            record.state,
            bytes(record.payload),
            record.content_type,
            record.traceback,
            record.date_done,
            meta,
            _ttl(ttl_s),
        )
        self._call(
            f"store the result of task {record.task_id!r}",
            lambda d: d.execute(self._store, params),
            writes_bytes=size,
        )

    def get(self, task_id: str) -> ResultRecord | None:
        return self.get_many([task_id]).get(task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """Unexpired records of those ids: lists of 100 ids per request, the requests
        sent concurrently (``read_concurrency`` in flight)."""
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return {}
        results = self._call("read results", lambda d: self._in_chunks(d, self._get, ids))
        found = {}
        for rows in results:
            for values in rows.rows:
                row = dict(zip(rows.columns, values, strict=True))
                if row["state"] is not None:
                    found[row["task_id"]] = _record(row["task_id"], row)
        return found

    def _in_chunks(self, driver: Driver, statement: Prepared, ids: list[str]) -> list[Rows]:
        """``statement`` (``... WHERE task_id IN ?``) over ``ids`` in lists of
        ``IDS_PER_READ``, sent concurrently."""
        chunks = [(ids[i : i + IDS_PER_READ],) for i in range(0, len(ids), IDS_PER_READ)]
        if len(chunks) == 1:
            return [driver.execute(statement, chunks[0])]
        return driver.execute_many(statement, chunks, concurrency=self.options.read_concurrency)

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        """Poll until every id has a ready record, or ``timeout_s`` passes.

        Each round reads only the oldest ``WAIT_WINDOW`` ids still pending: the call
        cannot return before those are ready anyway, and tasks tend to finish in the
        order they were sent, so the rest would mostly be read as absent, again and
        again (waiting for 5,000 results, the node read 6 ids per result; with the
        window, 1.6). When a whole window is found ready, the next one is read at
        once; otherwise the next round comes after a backoff from 10 ms growing to
        ``wait_poll_max_s``. On timeout, the ids beyond the window are read once, so
        the caller gets every ready record. Returns early, with what it found, if the
        backend is closed meanwhile.
        """
        pending = list(dict.fromkeys(task_ids))
        ready: dict[str, ResultRecord] = {}
        deadline = None if timeout_s is None else time.monotonic() + max(timeout_s, 0.0)
        pause_s = _POLL_FIRST_S
        while pending:
            window = pending[:WAIT_WINDOW]
            found = self._ready_among(window)
            if found is None:
                return ready  # closed
            ready.update(found)
            pending = [t for t in pending if t not in ready]
            if not pending:
                break
            if len(found) == len(window):
                continue  # the whole window is ready: read the next one now
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                ready.update(self._ready_among(pending[WAIT_WINDOW:]) or {})
                break
            if self._session.wait_closed(pause_s if remaining is None else min(pause_s, remaining)):
                break
            pause_s = min(pause_s * _POLL_GROWTH, self.options.wait_poll_max_s)
        return ready

    def _ready_among(self, task_ids: list[str]) -> dict[str, ResultRecord] | None:
        """The ready records of these ids; None if the backend was closed meanwhile."""
        try:
            found = self.get_many(task_ids)
        except ResultBackendError:
            if self._session.closed:
                return None
            raise
        return {task_id: record for task_id, record in found.items() if record.ready}

    def forget(self, task_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(task_ids))
        if ids:
            self._call("forget results", lambda d: self._in_chunks(d, self._forget, ids))

    # -- sets, counters, claims ---------------------------------------------------------

    def set_add(self, key: str, member: str, *, ttl_s: float | None) -> int:
        """Add ``member`` (a row in the set's partition) and advance the size, in one
        lightweight transaction; return the size after. A member already present is
        not counted again (its add returns the current size), so the call is safe to
        retry after an unknown outcome."""
        ttl = _ttl(ttl_s)

        def run(driver: Driver) -> int:
            row = driver.execute(self._set_size, (key,)).first()
            expected: int | None = row["size"] if row else None
            for _ in range(_CAS_TIMEOUT_RETRIES):
                size = (expected or 0) + 1
                params = (ttl, size, key, expected, key, member, ttl)
                try:
                    result = driver.execute(self._set_add, params)
                except Exception as exc:
                    if is_cas_timeout(exc):
                        continue  # the retry sees the member if it was added
                    raise
                if _applied(result):
                    return size
                current = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
                expected = next((c["size"] for c in current if c.get("size") is not None), None)
                if any(c.get("member") == member for c in current):
                    return int(expected or 0)
            raise ResultBackendError(
                f"{self._session.describe()}: add to the set {key!r}: lightweight "
                f"transactions kept timing out ({_CAS_TIMEOUT_RETRIES} tries)"
            )

        return self._call(f"add to the set {key!r}", run)

    def incr(self, key: str, amount: int = 1, *, ttl_s: float | None) -> int:
        """Compare-and-set loop on a bigint: atomic, and exactly once even when an
        attempt's outcome is unknown (its token is looked up with a serial read
        before trying again). Costs two round trips plus one lightweight transaction
        (four round trips to the replicas) per call, more under contention."""
        ttl = _ttl(ttl_s)
        token = uuid.uuid4().hex
        attempted = False

        def applied_value(driver: Driver) -> int | None:
            row = driver.execute(self._counter_token, (token, key)).rows
            value = row[0][0] if row else None
            return None if value is None else int(value)

        def run(driver: Driver) -> int:
            nonlocal attempted
            if attempted and (done := applied_value(driver)) is not None:
                return done
            row = driver.execute(self._counter_value, (key,)).first()
            expected: int | None = row["value"] if row else None
            for _ in range(_CAS_TIMEOUT_RETRIES):
                value = (expected or 0) + amount
                attempted = True
                try:
                    result = driver.execute(
                        self._incr, (ttl, value, key, expected, token, value, key)
                    )
                except Exception as exc:
                    if not is_cas_timeout(exc):
                        raise
                    if (done := applied_value(driver)) is not None:
                        return done
                    continue
                if _applied(result):
                    return value
                current = result.first() or {}
                expected = current.get("value")
            raise ResultBackendError(
                f"{self._session.describe()}: increment the counter {key!r}: lightweight "
                f"transactions kept timing out ({_CAS_TIMEOUT_RETRIES} tries)"
            )

        return self._call(f"increment the counter {key!r}", run)

    def claim(self, key: str, owner: str, *, ttl_s: float | None) -> str:
        """``INSERT ... IF NOT EXISTS``: the first claimer wins; a failed insert's reply
        names the winner. A retry after an unknown outcome is safe (it finds its own
        earlier claim)."""
        params = (key, owner, _ttl(ttl_s))

        def run(driver: Driver) -> str:
            for _ in range(_CAS_TIMEOUT_RETRIES):
                try:
                    result = driver.execute(self._claim, params)
                except Exception as exc:
                    if is_cas_timeout(exc):
                        continue
                    raise
                if _applied(result):
                    return owner
                current = result.first() or {}
                if current.get("owner") is not None:
                    return str(current["owner"])
            raise ResultBackendError(
                f"{self._session.describe()}: claim {key!r}: lightweight transactions kept "
                f"timing out ({_CAS_TIMEOUT_RETRIES} tries)"
            )

        return self._call(f"claim {key!r}", run)

    def put_mark(self, key: str, value: str, *, ttl_s: float | None) -> None:
        params = (key, value, _ttl(ttl_s))
        self._call(f"set the mark {key!r}", lambda d: d.execute(self._put_mark, params))

    def get_marks(self, keys: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        pages = self._call("read marks", lambda d: self._in_chunks(d, self._get_marks, wanted))
        # Rows of (key, owner), the statement's columns.
        return {
            str(key): str(owner) for page in pages for key, owner in page.rows if owner is not None
        }

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """``INSERT ... IF NOT EXISTS``; when the reply names ``owner`` the holder, renew."""
        ttl = _lease_ttl(ttl_s)

        def run(driver: Driver) -> bool:
            for _ in range(_CAS_TIMEOUT_RETRIES):
                result = self._lwt(driver, self._lease_take, (name, owner, ttl))
                if result is None:
                    continue
                if _applied(result):
                    return True
                holder = (result.first() or {}).get("owner")
                if holder is None:
                    continue  # expired or released meanwhile: take it again
                if holder != owner:
                    return False
                renewed = self._lwt(driver, self._lease_renew, (ttl, owner, name, owner))
                if renewed is not None and _applied(renewed):
                    return True
            raise self._stuck(f"acquire the lease {name!r}")

        return self._call(f"acquire the lease {name!r}", run)

    def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        params = (_lease_ttl(ttl_s), owner, name, owner)

        def run(driver: Driver) -> bool:
            for _ in range(_CAS_TIMEOUT_RETRIES):
                result = self._lwt(driver, self._lease_renew, params)
                if result is not None:
                    return _applied(result)
            raise self._stuck(f"renew the lease {name!r}")

        return self._call(f"renew the lease {name!r}", run)

    def release_lease(self, name: str, owner: str) -> bool:
        def run(driver: Driver) -> bool:
            for _ in range(_CAS_TIMEOUT_RETRIES):
                result = self._lwt(driver, self._lease_release, (name, owner))
                if result is not None:
                    return _applied(result)
            raise self._stuck(f"release the lease {name!r}")

        return self._call(f"release the lease {name!r}", run)

    def _lwt(self, driver: Driver, statement: Prepared, params: Sequence[Any]) -> Rows | None:
        """Run a lightweight transaction; None when its outcome is unknown (a Paxos timeout)."""
        try:
            return driver.execute(statement, params)
        except Exception as exc:
            if is_cas_timeout(exc):
                return None
            raise

    def _stuck(self, what: str) -> ResultBackendError:
        return ResultBackendError(
            f"{self._session.describe()}: {what}: lightweight transactions kept "
            f"timing out ({_CAS_TIMEOUT_RETRIES} tries)"
        )

    def delete_keys(self, keys: Sequence[str]) -> None:
        params = [(k,) for k in dict.fromkeys(keys)]
        if not params:
            return

        def run(driver: Driver) -> None:
            for statement in self._deletes:
                driver.execute_many(statement, params, concurrency=self.options.read_concurrency)

        self._call("delete sets, counters, claims and marks", run)

    def close(self) -> None:
        """Close the cluster connection and wake waiters (they return what they found).
        Idempotent."""
        self._session.close()

    def _call(
        self, what: str, work: Callable[[Driver], T], *, writes_bytes: int | None = None
    ) -> T:
        try:
            return self._session.call(what, work, writes_bytes=writes_bytes)
        except Closed:
            raise ResultBackendError(f"{self._session.describe()} is closed ({what})") from None


def _ttl(ttl_s: float | None) -> int:
    """Cassandra's TTL: whole seconds, rounded up (0 = none), at most 20 years."""
    if ttl_s is None or ttl_s <= 0:
        return 0
    return min(MAX_TTL_S, max(1, math.ceil(ttl_s)))


def _lease_ttl(ttl_s: float) -> int:
    """A lease's TTL: one second more than asked. Cassandra ends a cell at the whole
    second it was written in plus its TTL, so a lease written late in a second would
    otherwise end up to a second early, while its holder still counts on it; a lease
    may end late (a dead holder's lease is taken over a second later), never early."""
    return _ttl(ttl_s) + 1 if ttl_s > 0 else 0


def _applied(result: Rows) -> bool:
    row = result.first()
    return bool(row and row.get("[applied]"))


def _meta_json(record: ResultRecord) -> str:
    try:
        return json.dumps(
            dict(record.meta), separators=(",", ":"), allow_nan=False, ensure_ascii=False
        )
    except (TypeError, ValueError) as exc:
        raise ResultBackendError(
            f"the meta of task {record.task_id!r} is not JSON-safe ({exc}); "
            f"meta may hold only JSON types"
        ) from exc


def _record(task_id: str, row: Mapping[str, Any]) -> ResultRecord:
    try:
        meta = json.loads(row["meta"]) if row["meta"] else {}
    except ValueError as exc:
        raise ResultBackendError(
            f"the stored result of task {task_id!r} has unreadable meta: {exc}"
        ) from exc
    return ResultRecord(
        task_id=task_id,
        state=row["state"],
        payload=bytes(row["payload"] or b""),
        content_type=row["content_type"] or "application/json",
        traceback=row["traceback"],
        date_done=row["date_done"],
        meta=meta,
    )


def create_backend(url: str, options: Mapping[str, Any]) -> ResultBackend:
    """Build a :class:`CassandraBackend` for a ``cassandra://`` URL."""
    return CassandraBackend(url, options)
