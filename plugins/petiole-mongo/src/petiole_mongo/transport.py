"""The MongoDB transport: one document per message, leased in place.

Collections (``<prefix>`` is the ``collection_prefix`` option, ``petiole``):

``<prefix>_messages``
    ``{_id: ObjectId, queue, priority, visible_at, receipt, delivery_count,
    message_id, enqueued_at, payload}``. One field, ``visible_at`` (seconds since
    the epoch, a double), serves both delays and leases, as SQS's visibility
    timeout does: a message is available when ``visible_at <= now``. Reserving
    is one atomic ``findAndModify`` that sets ``visible_at`` to the lease's end,
    a fresh random ``receipt`` and ``delivery_count + 1``; a lease that runs out
    therefore makes the message available again with no sweeper. ``ack``,
    ``nack``, ``extend`` and ``dead_letter`` match on ``_id`` *and* ``receipt``,
    so a worker whose lease expired cannot touch the lease another worker holds.

``<prefix>_dead_letters``
    ``{_id, queue, reason, delivery_count, dead_at, priority, message_id,
    payload, receipt}``; a dead letter keeps its message's ``_id``.

Indexes, created on first use (see :func:`_prepare`): ``(queue, priority -1,
visible_at, _id)`` walks due messages in delivery order with no sort step
(equality, sort, range); ``(queue, visible_at)`` answers "when is the next one
due" and serves ``size`` and ``purge``; ``(queue, dead_at, _id)`` lists dead letters.

Times are the clocks of the machines calling (producers, workers), not the
server's: keep them in sync (NTP), as any lease-based queue needs.

URL and options: see :mod:`petiole_mongo._options`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from petiole.errors import MessageTooLarge, TransportError
from petiole.transport import (
    DeadLetter,
    Delivery,
    Transport,
    TransportCapabilities,
    check_queue_names,
)
from petiole_mongo._client import Closed, Connector, Document, Notifier
from petiole_mongo._options import parse_url
from petiole_mongo._watch import ChangeFeed

COMPONENT = "mongo transport"

T = TypeVar("T")

#: MongoDB's document limit is 16 MiB; this leaves 64 KiB for the other fields.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024 - 64 * 1024

# Delivery order within a queue: priority, then the time it became due, then
# publication order (ObjectIds grow with time).
_ORDER = [("priority", DESCENDING), ("visible_at", ASCENDING), ("_id", ASCENDING)]
_CLAIMED = {"delivery_count": 1, "message_id": 1, "payload": 1}
_DEAD_ORDER = [("dead_at", ASCENDING), ("_id", ASCENDING)]
_DUPLICATE_KEY = 11000

# What may make a message available: a publish or a requeued dead letter (an
# insert), and a nack (an update setting receipt to null). Claims, extends and
# acks are not.
_WAKE_PIPELINE: list[Document] = [
    {
        "$match": {
            "$or": [
                {"operationType": "insert"},
                {
                    "operationType": "update",
                    "updateDescription.updatedFields.receipt": {"$type": "null"},
                },
            ]
        }
    },
    {"$project": {"operationType": 1}},
]

_FIRST_POLL_DELAY_S = 0.01
# With a change stream open, waiters still look this often: a safety net.
_WATCHED_POLL_S = 2.0
# Never busy-loop when the clock says a message is due but another worker took it.
_MIN_SLEEP_S = 0.005


class MongoTransport:
    """A :class:`~petiole.transport.Transport` on MongoDB (see the module docstring)."""

    capabilities = TransportCapabilities(
        priorities=True,
        max_delay_s=None,
        broadcast=False,
        max_message_bytes=MAX_MESSAGE_BYTES,
        leases_expire=True,
    )

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        target = parse_url(url, options, component=COMPONENT)
        self.options = target.options
        self._conn = Connector(
            target, component=COMPONENT, error_type=TransportError, prepare=self._prepare
        )
        self.messages_name = self._conn.collection_name("messages")
        self.dead_letters_name = self._conn.collection_name("dead_letters")
        self._messages: Collection[Document] = self._conn.db[self.messages_name]
        self._dead: Collection[Document] = self._conn.db[self.dead_letters_name]
        self._notifier = Notifier()
        self._feed = ChangeFeed(
            self._conn,
            self.messages_name,
            _WAKE_PIPELINE,
            on_change=lambda _change: self._notifier.notify(),
            on_live=self._notifier.notify,
        )

    def __repr__(self) -> str:
        return f"MongoTransport({self._conn.target.masked_url!r})"

    def _prepare(self, db: Database[Document]) -> None:
        messages = db[self.messages_name]
        messages.create_index(
            [("queue", ASCENDING), *_ORDER[:2], ("_id", ASCENDING)], name="by_order"
        )
        messages.create_index([("queue", ASCENDING), ("visible_at", ASCENDING)], name="by_due")
        db[self.dead_letters_name].create_index(
            [("queue", ASCENDING), *_DEAD_ORDER], name="by_queue"
        )

    def publish(
        self,
        queue: str,
        payload: bytes,
        *,
        message_id: str = "",
        delay_s: float = 0.0,
        priority: int = 0,
    ) -> None:
        """Insert the message; acknowledged by the server (per the URL's write
        concern, ``w=majority`` by default on a replica set) on return.

        A priority outside 0-9 is clamped into that range.
        """
        if len(payload) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(len(payload), MAX_MESSAGE_BYTES, COMPONENT)
        now = time.time()
        document = {
            "queue": queue,
            "priority": min(max(int(priority), 0), 9),
            "visible_at": now + max(delay_s, 0.0),
            "receipt": None,
            "delivery_count": 0,
            "message_id": message_id,
            "enqueued_at": now,
            "payload": bytes(payload),
        }
        self._call(
            f"publish a message to queue {queue!r}", lambda db: self._messages.insert_one(document)
        )
        # Even a delayed message wakes local waiters: they re-plan their sleep around it.
        self._notifier.notify()

    def reserve(
        self, queues: Sequence[str], *, max_messages: int, wait_s: float, lease_s: float
    ) -> list[Delivery]:
        """Lease up to ``max_messages`` due messages, earlier queues first.

        Each message is claimed by one atomic ``findAndModify``, so concurrent
        reservers anywhere never share a lease. Waits by polling with backoff,
        woken early by publishes in this process and, where the deployment has
        change streams, in any process. Returns ``[]`` early if the transport is
        closed while waiting.
        """
        names = check_queue_names(queues, allow_none=True)
        if max_messages <= 0 or not names:
            return []
        deadline = time.monotonic() + max(wait_s, 0.0)
        lease_s = max(lease_s, 0.0)
        delay_s = _FIRST_POLL_DELAY_S
        poll_cap_s = self.options.poll_interval_ms / 1000
        try:
            while True:
                seen = self._notifier.generation
                deliveries = self._claim(names, max_messages, lease_s)
                if deliveries:
                    return deliveries
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._feed.start()
                cap_s = _WATCHED_POLL_S if self._feed.live else poll_cap_s
                sleep_s = min(delay_s, cap_s, remaining)
                delay_s *= 2
                next_due = self._next_due(names)
                if next_due is not None:
                    sleep_s = min(sleep_s, max(next_due - time.time(), _MIN_SLEEP_S))
                self._notifier.wait(seen, sleep_s)
                if self._conn.closed:
                    return []
        except Closed:
            return []

    def _claim(self, queues: list[str], max_messages: int, lease_s: float) -> list[Delivery]:
        """Claim due messages one ``findAndModify`` at a time, queue by queue."""

        def run(db: Database[Document]) -> list[Delivery]:
            deliveries: list[Delivery] = []
            for queue in queues:
                while len(deliveries) < max_messages:
                    now = time.time()
                    token = secrets.token_hex(8)
                    doc = self._messages.find_one_and_update(
                        {"queue": queue, "visible_at": {"$lte": now}},
                        {
                            "$set": {"visible_at": now + lease_s, "receipt": token},
                            "$inc": {"delivery_count": 1},
                        },
                        sort=_ORDER,
                        projection=_CLAIMED,
                        return_document=ReturnDocument.AFTER,
                    )
                    if doc is None:
                        break
                    deliveries.append(
                        Delivery(
                            payload=bytes(doc["payload"]),
                            queue=queue,
                            receipt=f"{doc['_id']}:{token}",
                            delivery_count=int(doc["delivery_count"]),
                            message_id=str(doc.get("message_id") or ""),
                            lease_expires_at=now + lease_s,
                        )
                    )
            return deliveries

        return self._conn.call("reserve messages", run)

    def _next_due(self, queues: list[str]) -> float | None:
        """The earliest ``visible_at`` of the queues (due, delayed or leased); None if empty."""

        def run(db: Database[Document]) -> float | None:
            times = []
            for queue in queues:
                doc = self._messages.find_one(
                    {"queue": queue}, sort=[("visible_at", ASCENDING)], projection={"visible_at": 1}
                )
                if doc is not None:
                    times.append(float(doc["visible_at"]))
            return min(times, default=None)

        return self._conn.call("look for the next due message", run)

    def ack(self, delivery: Delivery) -> None:
        """Delete the message if ``delivery`` still holds its lease; otherwise do nothing."""
        lease = _lease(delivery)
        if lease is not None:
            self._call(
                f"acknowledge a message of queue {delivery.queue!r}",
                lambda db: self._messages.delete_one(lease),
            )

    def nack(self, delivery: Delivery, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        """Requeue (visible after ``delay_s``) or delete; a stale receipt does nothing.

        The delivery count is not changed: it counts reservations, and the next
        one increments it.
        """
        lease = _lease(delivery)
        if lease is None:
            return
        if not requeue:
            self.ack(delivery)
            return
        change = {"$set": {"visible_at": time.time() + max(delay_s, 0.0), "receipt": None}}
        self._call(
            f"return a message to queue {delivery.queue!r}",
            lambda db: self._messages.update_one(lease, change),
        )
        self._notifier.notify()

    def extend(self, delivery: Delivery, *, lease_s: float) -> bool:
        """Move the lease's end to ``lease_s`` from now.

        True while ``delivery`` still holds the lease, even if it ran out and no
        one has reserved the message since (nothing was lost yet).
        """
        lease = _lease(delivery)
        if lease is None:
            return False
        change = {"$set": {"visible_at": time.time() + max(lease_s, 0.0)}}
        result = self._call(
            f"extend a lease in queue {delivery.queue!r}",
            lambda db: self._messages.update_one(lease, change),
        )
        return result.matched_count == 1

    def dead_letter(self, delivery: Delivery, *, reason: str) -> None:
        """Copy the message into the dead letters, then delete it, in one
        transaction where the deployment has them.

        Without transactions (a standalone server) the order makes it safe: a
        crash between the two writes leaves the message in both places, never
        in neither; its dead letter keeps the message's ``_id``, so burying it
        again replaces the copy. A stale receipt does nothing.
        """
        lease = _lease(delivery)
        if lease is None:
            return

        def work(session: ClientSession | None) -> None:
            doc = self._messages.find_one(lease, session=session)
            if doc is None:
                return
            dead = {
                "_id": doc["_id"],
                "queue": doc["queue"],
                "reason": reason,
                "delivery_count": doc["delivery_count"],
                "dead_at": time.time(),
                "priority": doc["priority"],
                "message_id": doc.get("message_id", ""),
                "payload": doc["payload"],
                "receipt": doc["receipt"],
            }
            self._dead.replace_one({"_id": doc["_id"]}, dead, upsert=True, session=session)
            if self._messages.delete_one(lease, session=session).deleted_count == 0:
                # The lease was lost between the read and the delete (possible
                # only without a transaction): the message is live, so undo the copy.
                self._dead.delete_one(
                    {"_id": doc["_id"], "receipt": doc["receipt"]}, session=session
                )

        self._transaction(f"dead-letter a message of queue {delivery.queue!r}", work)

    def purge(self, queue: str) -> int:
        result = self._call(
            f"purge queue {queue!r}", lambda db: self._messages.delete_many({"queue": queue})
        )
        return int(result.deleted_count)

    def size(self, queue: str) -> int:
        return self._call(
            f"count the messages of queue {queue!r}",
            lambda db: self._messages.count_documents({"queue": queue}),
        )

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:  # MongoDB reads a limit of 0 as "no limit"
            return []

        def run(db: Database[Document]) -> list[Document]:
            return list(self._dead.find({"queue": queue}, sort=_DEAD_ORDER, limit=limit))

        docs = self._call(f"read the dead letters of queue {queue!r}", run)
        return [
            DeadLetter(
                dead_letter_id=str(doc["_id"]),
                queue=doc["queue"],
                reason=doc["reason"],
                delivery_count=int(doc["delivery_count"]),
                dead_at=float(doc["dead_at"]),
                payload=bytes(doc["payload"]),
            )
            for doc in docs
        ]

    def requeue_dead_letters(self, queue: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        """Republish dead letters (all, or those ids) with delivery count 0 and
        their original priority and message id, oldest first, then delete them;
        in one transaction where the deployment has them.

        A requeued message keeps its dead letter's ``_id``, so a requeue
        interrupted between its two writes and run again republishes nothing
        twice. Ids that are unknown, or belong to another queue, are ignored.
        """
        query: Document = {"queue": queue}
        if dead_letter_ids is not None:
            ids = [ObjectId(i) for i in dict.fromkeys(dead_letter_ids) if ObjectId.is_valid(i)]
            if not ids:
                return 0
            query["_id"] = {"$in": ids}

        def work(session: ClientSession | None) -> int:
            docs = list(self._dead.find(query, sort=_DEAD_ORDER, session=session))
            if not docs:
                return 0
            moved = [doc["_id"] for doc in docs]
            live = {
                doc["_id"]
                for doc in self._messages.find(
                    {"_id": {"$in": moved}}, projection={"_id": 1}, session=session
                )
            }
            now = time.time()
            fresh = [
                {
                    "_id": doc["_id"],
                    "queue": doc["queue"],
                    "priority": doc["priority"],
                    "visible_at": now,
                    "receipt": None,
                    "delivery_count": 0,
                    "message_id": doc.get("message_id", ""),
                    "enqueued_at": now,
                    "payload": doc["payload"],
                }
                for doc in docs
                if doc["_id"] not in live
            ]
            if fresh:
                try:
                    self._messages.insert_many(fresh, ordered=False, session=session)
                except BulkWriteError as exc:
                    # Without a transaction, a racing requeue may have put one back first.
                    errors = exc.details.get("writeErrors", [])
                    if session is not None or any(e.get("code") != _DUPLICATE_KEY for e in errors):
                        raise
            self._dead.delete_many({"_id": {"$in": moved}}, session=session)
            return len(docs)

        moved = self._transaction(f"requeue the dead letters of queue {queue!r}", work)
        if moved:
            self._notifier.notify()
        return moved

    def purge_dead_letters(self, queue: str) -> int:
        result = self._call(
            f"purge the dead letters of queue {queue!r}",
            lambda db: self._dead.delete_many({"queue": queue}),
        )
        return int(result.deleted_count)

    def close(self) -> None:
        """Close the connections and wake waiting reservers (they return ``[]``)."""
        if self._conn.closed:
            return
        self._conn.close()
        self._notifier.notify()
        self._feed.stop()

    def _call(self, what: str, work: Callable[[Database[Document]], T]) -> T:
        try:
            return self._conn.call(what, work)
        except Closed:
            raise TransportError(f"{self._conn.describe()} is closed ({what})") from None

    def _transaction(self, what: str, work: Callable[[ClientSession | None], T]) -> T:
        try:
            return self._conn.transaction(what, work)
        except Closed:
            raise TransportError(f"{self._conn.describe()} is closed ({what})") from None


def _lease(delivery: Delivery) -> Document | None:
    """The filter ``{_id, receipt}`` of a receipt; None for one this transport never issued."""
    message_id, _, token = delivery.receipt.partition(":")
    if not token or not ObjectId.is_valid(message_id):
        return None
    return {"_id": ObjectId(message_id), "receipt": token}


def create_transport(url: str, options: Mapping[str, Any]) -> Transport:
    """Build a :class:`MongoTransport` for a ``mongodb://`` or ``mongodb+srv://`` URL."""
    return MongoTransport(url, options)
