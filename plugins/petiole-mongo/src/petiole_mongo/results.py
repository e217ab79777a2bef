"""The MongoDB result backend.

Collections (``<prefix>`` is the ``collection_prefix`` option, ``petiole``):

``<prefix>_results``
    One document per task: ``{_id: task id, state, ready, payload, content_type,
    traceback, date_done, meta, expires_at}``. ``payload`` is stored as binary,
    ``meta`` as its JSON text (so any JSON key and integer size round-trips),
    ``expires_at`` as a date, or null to keep the record.

``<prefix>_keys``
    Chord sets ``{_id: "set:<key>", members, expires_at}``, counters
    ``{_id: "counter:<key>", value, expires_at}``, claims and marks
    ``{_id: "claim:<key>", owner, expires_at}`` (a mark's value in ``owner``),
    and leases ``{_id: "lease:<name>", owner, expires_at}``.

Both have a TTL index on ``expires_at``, created on first use, so the server
deletes what expired. Its sweeper runs once a minute, so every read also
filters on ``expires_at``: an entry is gone the moment its ttl ends, and an
expired set, counter or claim starts afresh.

Sets (``$addToSet``) and counters (``$inc``) are each one atomic
``findAndModify`` whose filter only matches an unexpired document, returning
the size or value after; when it matches nothing, an expired document is
deleted, an empty one inserted, and the change applied again. Claims insert
on the unique ``_id``; a duplicate key means someone holds it, and the holder
is read back (or, if expired, deleted and the insert retried).

A lease is acquired by one atomic ``findAndModify`` whose filter matches only
the caller's own or an expired lease, or, when nothing matched, by inserting
it on the unique ``_id`` (a duplicate key means another owner holds it).
Renew is a ``findAndModify`` and release a ``delete`` whose filters name the
owner and an unexpired ``expires_at``. Times are this client's clock (the
server's ``$$NOW`` is not available on every MongoDB-wire server).

``wait`` polls with capped backoff; where the deployment has change streams, a
stream on the results collection wakes waiters as soon as a ready record is
stored anywhere, and stores in this process wake them in any case.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from petiole import states
from petiole.backend import BackendCapabilities, ResultBackend, ResultRecord
from petiole.errors import ResultBackendError, ResultTooLarge
from petiole_mongo._client import Closed, Connector, Document
from petiole_mongo._options import parse_url
from petiole_mongo._watch import ChangeFeed

COMPONENT = "mongo result backend"

T = TypeVar("T")

#: MongoDB's document limit is 16 MiB; this leaves 64 KiB for the other fields.
MAX_RESULT_BYTES = 16 * 1024 * 1024 - 64 * 1024

_READY_PIPELINE: list[Document] = [
    {"$match": {"operationType": {"$in": ["insert", "replace"]}, "fullDocument.ready": True}},
    {"$project": {"documentKey": 1}},
]
_FIRST_POLL_DELAY_S = 0.01
# With a change stream open, waiters still read this often: a safety net.
_WATCHED_POLL_S = 2.0
# How many times an upsert or claim retries after meeting an expired document.
_EXPIRED_RETRIES = 10


class ReadyLog:
    """Numbered task ids that became ready, for waiters to know what to read again.

    Fed by this process's stores and by the change stream. An entry of
    ``None`` means "anything may have changed" (the stream reopened).
    """

    def __init__(self, size: int = 10_000) -> None:
        self._cond = threading.Condition()
        self._entries: deque[tuple[int, str | None]] = deque(maxlen=size)
        self.generation = 0

    def add(self, task_ids: Iterable[str | None]) -> None:
        with self._cond:
            for task_id in task_ids:
                self.generation += 1
                self._entries.append((self.generation, task_id))
            self._cond.notify_all()

    def wait(self, seen: int, timeout_s: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.generation != seen, max(timeout_s, 0.0))

    def since(self, seen: int) -> tuple[int, set[str] | None]:
        """``(generation now, ids added after seen)``; ``None`` when unknown
        (the log overflowed, or a stream reopened)."""
        with self._cond:
            if self.generation == seen:
                return seen, set()
            if not self._entries or self._entries[0][0] > seen + 1:
                return self.generation, None
            ids: set[str] = set()
            for generation, task_id in reversed(self._entries):
                if generation <= seen:
                    break
                if task_id is None:
                    return self.generation, None
                ids.add(task_id)
            return self.generation, ids


class MongoBackend:
    """A :class:`~petiole.backend.ResultBackend` and :class:`~petiole.backend.Coordination`
    on MongoDB (see the module docstring)."""

    capabilities = BackendCapabilities(push_wait=False, max_result_bytes=MAX_RESULT_BYTES)

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        target = parse_url(url, options, component=COMPONENT)
        self.options = target.options
        self._conn = Connector(
            target, component=COMPONENT, error_type=ResultBackendError, prepare=self._prepare
        )
        self.results_name = self._conn.collection_name("results")
        self.keys_name = self._conn.collection_name("keys")
        self._results: Collection[Document] = self._conn.db[self.results_name]
        self._keys: Collection[Document] = self._conn.db[self.keys_name]
        self._ready = ReadyLog()
        self._feed = ChangeFeed(
            self._conn,
            self.results_name,
            _READY_PIPELINE,
            on_change=lambda change: self._ready.add([str(change["documentKey"]["_id"])]),
            on_live=lambda: self._ready.add([None]),
        )

    def __repr__(self) -> str:
        return f"MongoBackend({self._conn.target.masked_url!r})"

    def _prepare(self, db: Database[Document]) -> None:
        for name in (self.results_name, self.keys_name):
            db[name].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="ttl")

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        """Replace the record (an upsert); it expires ``ttl_s`` from now.

        Raises :class:`~petiole.errors.ResultTooLarge` if the payload is over
        ``max_result_bytes`` (the worker then records the task as failed), and
        :class:`~petiole.errors.ResultBackendError` if ``record.meta`` is not
        JSON-safe or the server refuses the document (over 16 MiB with its
        traceback and meta).
        """
        if len(record.payload) > MAX_RESULT_BYTES:
            raise ResultTooLarge(
                len(record.payload),
                MAX_RESULT_BYTES,
                COMPONENT,
                f"MongoDB's 16 MiB document; task {record.task_id!r}",
            )
        ready = record.state in states.READY_STATES
        document = {
            "state": record.state,
            "ready": ready,
            "payload": bytes(record.payload),
            "content_type": record.content_type,
            "traceback": record.traceback,
            "date_done": record.date_done,
            "meta": _meta_json(record),
            "expires_at": _expires_at(_now(), ttl_s),
        }

        def run(db: Database[Document]) -> None:
            try:
                self._results.replace_one({"_id": record.task_id}, document, upsert=True)
            except DuplicateKeyError:
                # Two upserts of a new id raced and this one lost: now it exists.
                self._results.replace_one({"_id": record.task_id}, document, upsert=True)

        self._call(f"store the result of task {record.task_id!r}", run)
        if ready:
            self._ready.add([record.task_id])

    def get(self, task_id: str) -> ResultRecord | None:
        return self.get_many([task_id]).get(task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """Unexpired records of those ids, in one query (``$in``)."""
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return {}

        def run(db: Database[Document]) -> list[Document]:
            return list(self._results.find({"_id": {"$in": ids}, **_unexpired(_now())}))

        found = {doc["_id"]: _decode(doc) for doc in self._call("read results", run)}
        return {task_id: found[task_id] for task_id in ids if task_id in found}

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        """Block until every id has a ready record, or ``timeout_s`` passes (see
        the module docstring). Returns early, with what it found, if the backend
        is closed meanwhile."""
        pending = set(task_ids)
        ready: dict[str, ResultRecord] = {}
        deadline = None if timeout_s is None else time.monotonic() + max(timeout_s, 0.0)
        poll_cap_s = self.options.poll_interval_ms / 1000
        delay_s = _FIRST_POLL_DELAY_S
        to_read = set(pending)
        seen = self._ready.generation
        try:
            while pending:
                if to_read:
                    seen = self._ready.generation
                    for task_id, record in self.get_many(sorted(to_read)).items():
                        if record.ready:
                            ready[task_id] = record
                            pending.discard(task_id)
                    if not pending:
                        break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._feed.start()
                cap_s = _WATCHED_POLL_S if self._feed.live else poll_cap_s
                sleep_s = min(delay_s, cap_s, math.inf if remaining is None else remaining)
                self._ready.wait(seen, sleep_s)
                if self._conn.closed:
                    break
                generation, changed = self._ready.since(seen)
                if generation == seen:  # nothing was pushed: poll
                    delay_s = min(delay_s * 2, cap_s)
                    to_read = set(pending)
                else:
                    to_read = set(pending) if changed is None else pending & changed
                    seen = generation
        except Closed:
            pass
        except ResultBackendError:
            if not self._conn.closed:
                raise
        return ready

    def forget(self, task_ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(task_ids))
        if ids:
            self._call(
                "forget results", lambda db: self._results.delete_many({"_id": {"$in": ids}})
            )

    def set_add(self, key: str, member: str, *, ttl_s: float | None) -> int:
        """``$addToSet`` in one atomic ``findAndModify``, returning the set's size."""
        doc = self._upsert(
            f"add to the set {key!r}",
            f"set:{key}",
            {"$addToSet": {"members": member}},
            ttl_s,
            empty={"members": []},
            projection={"_id": 0, "size": {"$size": "$members"}},
        )
        return int(doc["size"])

    def incr(self, key: str, amount: int = 1, *, ttl_s: float | None) -> int:
        """``$inc`` in one atomic ``findAndModify``, returning the new value."""
        doc = self._upsert(
            f"increment the counter {key!r}",
            f"counter:{key}",
            {"$inc": {"value": int(amount)}},
            ttl_s,
            empty={"value": 0},
            projection={"_id": 0, "value": 1},
        )
        return int(doc["value"])

    def claim(self, key: str, owner: str, *, ttl_s: float | None) -> str:
        """Insert ``{_id, owner}``; on a duplicate key, read the holder back.

        The unique ``_id`` makes exactly one of racing inserts win. A holder
        whose claim expired is deleted (only that very claim) and the insert
        retried.
        """
        doc_id = f"claim:{key}"

        def run(db: Database[Document]) -> str:
            for _ in range(_EXPIRED_RETRIES):
                now = _now()
                try:
                    self._keys.insert_one(
                        {"_id": doc_id, "owner": owner, "expires_at": _expires_at(now, ttl_s)}
                    )
                    return owner
                except DuplicateKeyError:
                    held = self._keys.find_one({"_id": doc_id})
                    if held is None:
                        continue  # deleted meanwhile: try again
                    expires_at = held.get("expires_at")
                    if expires_at is not None and _as_utc(expires_at) <= now:
                        self._keys.delete_one({"_id": doc_id, "expires_at": expires_at})
                        continue
                    return str(held["owner"])
            raise ResultBackendError(f"{self._conn.describe()}: claim {key!r}: no progress")

        return self._call(f"claim {key!r}", run)

    def put_mark(self, key: str, value: str, *, ttl_s: float | None) -> None:
        doc_id = f"claim:{key}"

        def run(db: Database[Document]) -> None:
            doc = {"owner": value, "expires_at": _expires_at(_now(), ttl_s)}
            try:
                self._keys.replace_one({"_id": doc_id}, doc, upsert=True)
            except DuplicateKeyError:
                # A racing upsert inserted it first: now it exists, so replace it.
                self._keys.replace_one({"_id": doc_id}, doc, upsert=True)

        self._call(f"set the mark {key!r}", run)

    def get_marks(self, keys: Sequence[str]) -> dict[str, str]:
        ids = [f"claim:{key}" for key in dict.fromkeys(keys)]
        if not ids:
            return {}

        def run(db: Database[Document]) -> list[Document]:
            return list(self._keys.find({"_id": {"$in": ids}, **_unexpired(_now())}))

        docs = self._call("read marks", run)
        return {str(doc["_id"]).removeprefix("claim:"): str(doc["owner"]) for doc in docs}

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the caller's own or an expired lease in one ``findAndModify``,
        else insert it; a duplicate key means another owner holds it."""
        doc_id = f"lease:{name}"

        def run(db: Database[Document]) -> bool:
            for _ in range(_EXPIRED_RETRIES):
                now = _now()
                expires_at = _expires_at(now, ttl_s)
                taken = self._keys.find_one_and_update(
                    {"_id": doc_id, "$or": [{"owner": owner}, {"expires_at": {"$lte": now}}]},
                    {"$set": {"owner": owner, "expires_at": expires_at}},
                    projection={"_id": 1},
                )
                if taken is not None:
                    return True
                try:
                    self._keys.insert_one({"_id": doc_id, "owner": owner, "expires_at": expires_at})
                    return True
                except DuplicateKeyError:
                    held = self._keys.find_one({"_id": doc_id})
                    if (
                        held is not None
                        and held["owner"] != owner
                        and _as_utc(held["expires_at"]) > now
                    ):
                        return False
            raise ResultBackendError(f"{self._conn.describe()}: acquire {name!r}: no progress")

        return self._call(f"acquire the lease {name!r}", run)

    def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        def run(db: Database[Document]) -> bool:
            now = _now()
            renewed = self._keys.find_one_and_update(
                {"_id": f"lease:{name}", "owner": owner, "expires_at": {"$gt": now}},
                {"$set": {"expires_at": _expires_at(now, ttl_s)}},
                projection={"_id": 1},
            )
            return renewed is not None

        return self._call(f"renew the lease {name!r}", run)

    def release_lease(self, name: str, owner: str) -> bool:
        def run(db: Database[Document]) -> bool:
            deleted = self._keys.delete_one(
                {"_id": f"lease:{name}", "owner": owner, "expires_at": {"$gt": _now()}}
            )
            return deleted.deleted_count == 1

        return self._call(f"release the lease {name!r}", run)

    def delete_keys(self, keys: Sequence[str]) -> None:
        ids = [
            f"{kind}:{key}" for key in dict.fromkeys(keys) for kind in ("set", "counter", "claim")
        ]
        if ids:
            self._call(
                "delete sets, counters, claims and marks",
                lambda db: self._keys.delete_many({"_id": {"$in": ids}}),
            )

    def close(self) -> None:
        """Close the connections and wake waiters (they return what they found). Idempotent."""
        if self._conn.closed:
            return
        self._conn.close()
        self._ready.add([None])
        self._feed.stop()

    def _upsert(
        self,
        what: str,
        doc_id: str,
        change: Document,
        ttl_s: float | None,
        *,
        empty: Document,
        projection: Document,
    ) -> Document:
        """Apply ``change`` to the unexpired document ``doc_id`` and renew its
        expiry, in one atomic ``findAndModify``; return the document after, projected.

        When there is no such document (absent, or expired), an expired one is
        deleted and ``empty`` inserted (a racing caller's insert may win: the
        same), then the change is applied to it. No upsert: a ``findAndModify``
        upsert that races another caller's insert of the same ``_id`` fails
        with a duplicate key on mongod, and returns no document on some
        MongoDB-wire servers; an insert is unambiguous on every one.
        """

        def run(db: Database[Document]) -> Document:
            for _ in range(_EXPIRED_RETRIES):
                now = _now()
                doc = self._keys.find_one_and_update(
                    {"_id": doc_id, **_unexpired(now)},
                    {**change, "$set": {"expires_at": _expires_at(now, ttl_s)}},
                    projection=projection,
                    return_document=ReturnDocument.AFTER,
                )
                if doc is not None:
                    return doc
                self._keys.delete_one({"_id": doc_id, "expires_at": {"$lte": now}})
                # A racing caller may create it first: the change then goes to theirs.
                with contextlib.suppress(DuplicateKeyError):
                    self._keys.insert_one(
                        {"_id": doc_id, **empty, "expires_at": _expires_at(now, ttl_s)}
                    )
            raise ResultBackendError(f"{self._conn.describe()}: {what}: no progress")

        return self._call(what, run)

    def _call(self, what: str, work: Callable[[Database[Document]], T]) -> T:
        try:
            return self._conn.call(what, work)
        except Closed:
            raise ResultBackendError(f"{self._conn.describe()} is closed ({what})") from None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _expires_at(now: datetime, ttl_s: float | None) -> datetime | None:
    return None if ttl_s is None else now + timedelta(seconds=max(ttl_s, 0.0))


def _unexpired(now: datetime) -> Document:
    """Matches documents that never expire (null) or expire after ``now``."""
    return {"$or": [{"expires_at": None}, {"expires_at": {"$gt": now}}]}


def _as_utc(value: datetime) -> datetime:
    """pymongo returns naive UTC datetimes unless the client says ``tz_aware``."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _meta_json(record: ResultRecord) -> str:
    try:
        return json.dumps(record.meta, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ResultBackendError(
            f"the meta of task {record.task_id!r} is not JSON-safe ({exc}); "
            f"meta may hold only JSON types"
        ) from exc


def _decode(doc: Document) -> ResultRecord:
    task_id = str(doc["_id"])
    try:
        return ResultRecord(
            task_id=task_id,
            state=doc["state"],
            payload=bytes(doc["payload"]),
            content_type=doc["content_type"],
            traceback=doc.get("traceback"),
            date_done=doc.get("date_done"),
            meta=json.loads(doc["meta"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultBackendError(
            f"the stored result of task {task_id!r} is not a petiole-mongo record: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def create_backend(url: str, options: Mapping[str, Any]) -> ResultBackend:
    """Build a :class:`MongoBackend` for a ``mongodb://`` or ``mongodb+srv://`` URL."""
    return MongoBackend(url, options)
