"""The SQS transport: each method's contract is in ``petiole/transport.py``.

How the contract maps onto SQS:

* **Leases are visibility timeouts.** ``reserve`` receives with
  ``VisibilityTimeout = ceil(lease_s)`` (SQS counts whole seconds, 0 to 12 h);
  ``extend`` and ``nack`` are ``ChangeMessageVisibility``; ``ack`` is
  ``DeleteMessage``. ``delivery_count`` is SQS's ``ApproximateReceiveCount``, and
  the receipt is the ``ReceiptHandle`` of that receive.
* **Stale receipts.** Real SQS ignores a delete with an old receipt handle, but
  that is not something every SQS implementation does (moto accepts *any*
  handle a message ever had). So the transport also keeps, for each lease it
  handed out, when that lease ends by its own clock (moved by ``extend``), and
  treats a receipt whose lease has ended as stale: ``ack``, ``nack`` and
  ``dead_letter`` leave the message alone, ``extend`` returns False. A message
  whose lease ran out is redelivered anyway, so this never loses anything; at
  worst a task that finished just after its lease ran out runs again.
* **Delays** are ``DelaySeconds`` (at most 15 minutes: ``max_delay_s`` = 900; the
  core re-delays longer ones). FIFO queues have no per-message delay, so there a
  delayed message carries a ``petiole.not_before`` attribute, and ``reserve``
  hides a message that arrives early with ``ChangeMessageVisibility`` until due.
* **No priorities, no order** on standard queues (``fifo=False``, ``queue_preference=False``).
* **Payloads** are base64 in the body; ``max_message_bytes`` is what fits in
  SQS's limit after base64 and room for attributes (see :mod:`._messages`).
* **Dead letters** live in a second queue per queue (see :mod:`.dead_letters`).

Thread safety: boto3 clients are thread-safe; the transport's own state (queue
URLs, lease ends) is behind locks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from petiole.errors import MessageTooLarge, TransportError
from petiole.transport import (
    DeadLetter,
    Delivery,
    Transport,
    TransportCapabilities,
    check_queue_names,
)
from petiole_sqs import _messages as msg
from petiole_sqs._client import (
    BATCH_SIZE,
    RECEIPT_REFUSED,
    SqsClient,
    SqsRequestError,
)
from petiole_sqs._names import QueueNames, queue_names
from petiole_sqs.dead_letters import DeadLetterStore
from petiole_sqs.options import MAX_VISIBILITY_S, SqsOptions, parse_url

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import (
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

# A lease is treated as ended this long before our clock says it ends: SQS starts
# the visibility timeout when it handles the receive, a little before we see the reply.
_LEASE_MARGIN_S = 0.25
# Past this many unsettled leases, reserve forgets those that ended.
_PRUNE_LEASES_AT = 10_000
# A message reserved this little before its not_before time is handed out anyway.
_EARLY_TOLERANCE_S = 0.05
# Polls of a multi-queue reserve: each queue is long-polled this long in turn.
_ROTATION_WAIT_S = 1
_SIZE_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for :meth:`SqsTransport.publish_many`."""

    payload: bytes
    message_id: str = ""
    delay_s: float = 0.0


class PublishBatchError(TransportError):
    """Some messages of a :meth:`SqsTransport.publish_many` were refused by SQS.

    ``failed`` holds the indexes (into the list given) of those *not* sent; every
    other message was sent and is durable.
    """

    def __init__(self, message: str, failed: Sequence[int]) -> None:
        super().__init__(message)
        self.failed = list(failed)


def whole_seconds(seconds: float, *, high: int = MAX_VISIBILITY_S) -> int:
    """SQS timers are whole seconds: round up (never early), within 0..``high``."""
    if seconds <= 0 or math.isnan(seconds):
        return 0
    return min(math.ceil(seconds - 1e-6), high)


class SqsTransport:
    """A :class:`~petiole.transport.Transport` on Amazon SQS (see the module docstring)."""

    def __init__(self, options: SqsOptions | None = None) -> None:
        self.options = options or SqsOptions()
        self._sqs = SqsClient(self.options)
        self.capabilities = TransportCapabilities(
            priorities=False,
            max_delay_s=float(self.options.max_delay_s),
            broadcast=False,
            max_message_bytes=msg.max_payload_bytes(self.options.message_size_limit_bytes),
            leases_expire=True,
            min_lease_s=1.0,
            fifo=False,
            queue_preference=False,
            # A FIFO queue drops a copy with the same deduplication id for 5 minutes.
            deduplicates_copies=self.options.fifo,
        )
        self._dead = DeadLetterStore(self._sqs, self.options)
        self._names: dict[str, QueueNames] = {}
        # Leases handed out by this transport and not yet settled:
        self._leases: dict[str, tuple[float, str]] = {}  # receipt -> (ends, SQS MessageId)
        self._holding: dict[str, str] = {}  # SQS MessageId -> receipt
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"SqsTransport({self._sqs.describe()})"

    # -- publishing ---------------------------------------------------------------

    def publish(
        self,
        queue: str,
        payload: bytes,
        *,
        message_id: str = "",
        delay_s: float = 0.0,
        priority: int = 0,
    ) -> None:
        """``SendMessage``; durable in SQS when this returns. ``priority`` is ignored
        (SQS has none). Raises MessageTooLarge over ``capabilities.max_message_bytes``."""
        names = self._queue(queue)
        entry = self._entry("0", names, payload, message_id, delay_s)
        url = self._live_url(names, create=self.options.create_queues)
        self._sqs.call(
            f"send a message to queue {names.live!r}",
            self._sqs.client.send_message,
            QueueUrl=url,
            **{key: value for key, value in entry.items() if key != "Id"},
        )

    def publish_many(self, queue: str, messages: Sequence[Outgoing]) -> None:
        """Publish several messages with ``SendMessageBatch`` (10, and at most
        SQS's size limit, per request). Entries failing on SQS's side are retried;
        raises :class:`PublishBatchError` naming those SQS refused, after sending
        every other one. Sizes are checked before anything is sent."""
        names = self._queue(queue)
        entries = [
            self._entry(str(i), names, m.payload, m.message_id, m.delay_s)
            for i, m in enumerate(messages)
        ]
        if not entries:
            return
        url = self._live_url(names, create=self.options.create_queues)
        refused: dict[str, Any] = {}
        for chunk in _size_bounded_chunks(entries, self.options.message_size_limit_bytes):
            refused.update(
                self._sqs.batch(
                    f"send messages to queue {names.live!r}",
                    self._sqs.client.send_message_batch,
                    url,
                    chunk,
                )
            )
        if refused:
            first = next(iter(refused.values()))
            raise PublishBatchError(
                f"{self._sqs.describe()}: {len(refused)} of {len(entries)} messages to queue "
                f"{names.live!r} were refused ({first['Code']}: {first.get('Message', '')}); "
                "the others were sent",
                sorted(int(i) for i in refused),
            )

    def _entry(
        self, entry_id: str, names: QueueNames, payload: bytes, message_id: str, delay_s: float
    ) -> SendMessageBatchRequestEntryTypeDef:
        limit = self.capabilities.max_message_bytes
        if limit is not None and len(payload) > limit:
            raise MessageTooLarge(len(payload), limit, "SQS")
        attributes: dict[str, MessageAttributeValueTypeDef] = {}
        if message_id:
            attributes[msg.ID] = msg.string(message_id[: msg.MAX_ID_CHARS])
        entry: SendMessageBatchRequestEntryTypeDef = {
            "Id": entry_id,
            "MessageBody": msg.encode_body(payload),
        }
        delay = whole_seconds(delay_s, high=self.options.max_delay_s)
        if self.options.fifo:
            if delay:
                attributes[msg.NOT_BEFORE] = msg.number(time.time() + delay_s)
            entry["MessageGroupId"] = msg.group_id(
                names.queue, payload, message_id, self.options.message_group
            )
            entry["MessageDeduplicationId"] = msg.deduplication_id(message_id, payload)
        elif delay:
            entry["DelaySeconds"] = delay
        if attributes:
            entry["MessageAttributes"] = attributes
        return entry

    # -- reserving ------------------------------------------------------------------

    def reserve(
        self, queues: Sequence[str], *, max_messages: int, wait_s: float, lease_s: float
    ) -> list[Delivery]:
        """Receive up to ``max_messages`` (at most 10 per queue and call).

        One queue is long-polled (``WaitTimeSeconds`` up to ``wait_time_s``, in whole
        seconds, so a wait of 0.5 s lasts 1 s). Several queues are each polled once
        without waiting, earlier queues first, then long-polled 1 s each in turn
        until one has messages or ``wait_s`` ends. Order within a queue is SQS's.
        """
        wanted = check_queue_names(queues, allow_none=True)
        if max_messages <= 0 or not wanted or self._closed:
            return []
        targets = [self._queue(q) for q in wanted]
        urls = [self._live_url(n, create=self.options.create_queues) for n in targets]
        visibility = whole_seconds(lease_s)
        deadline = time.monotonic() + max(wait_s, 0.0)
        turn = 0
        while True:
            got: list[Delivery] = []
            if len(targets) == 1 or turn > 0:
                index = (turn - 1) % len(targets) if len(targets) > 1 else 0
                remaining = deadline - time.monotonic()
                poll_s = 0
                if remaining > 0:
                    cap = self.options.wait_time_s if len(targets) == 1 else _ROTATION_WAIT_S
                    poll_s = min(cap, whole_seconds(remaining))
                got = self._receive(targets[index], urls[index], max_messages, visibility, poll_s)
            else:
                for names, url in zip(targets, urls, strict=True):
                    got += self._receive(names, url, max_messages - len(got), visibility, 0)
                    if len(got) >= max_messages:
                        break
            if got or self._closed or time.monotonic() >= deadline:
                return got
            turn += 1

    def _receive(
        self, names: QueueNames, url: str, wanted: int, visibility: int, poll_s: int
    ) -> list[Delivery]:
        response = self._sqs.call(
            f"receive from queue {names.live!r}",
            self._sqs.client.receive_message,
            QueueUrl=url,
            MaxNumberOfMessages=min(wanted, BATCH_SIZE),
            WaitTimeSeconds=poll_s,
            VisibilityTimeout=visibility,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        received_at = time.time()
        deliveries: list[Delivery] = []
        for message in response.get("Messages", []):
            delivery = self._delivery(names, url, message, received_at + visibility)
            if delivery is not None and self._take(message.get("MessageId", ""), delivery):
                deliveries.append(delivery)
        return deliveries

    def _take(self, sqs_id: str, delivery: Delivery) -> bool:
        """Record the lease; False for a second copy of a message this transport
        holds a live lease on. Standard queues may, rarely, deliver a message twice:
        the copy is not handed out, and the first lease decides the message's fate.
        (This catches only copies that arrive while the first lease is held; plain
        moto's concurrent double hand-out is fixed in the test server instead, see
        :mod:`petiole_sqs._moto_launcher`.)"""
        now = time.time()
        with self._lock:
            held = self._holding.get(sqs_id)
            if held is not None and self._leases.get(held, (0.0, ""))[0] > now:
                return False
            if len(self._leases) >= _PRUNE_LEASES_AT:
                # Deliveries nobody settled (their holder dropped them): forget ended ones.
                for receipt, (ends, held_id) in list(self._leases.items()):
                    if ends < now:
                        del self._leases[receipt]
                        self._holding.pop(held_id, None)
            self._holding[sqs_id] = delivery.receipt
            self._leases[delivery.receipt] = (delivery.lease_expires_at, sqs_id)
        return True

    def _delivery(
        self, names: QueueNames, url: str, message: MessageTypeDef, expires_at: float
    ) -> Delivery | None:
        receipt = message["ReceiptHandle"]
        count = msg.receive_count(message)
        not_before = msg.float_attribute(message, msg.NOT_BEFORE)
        if not_before is not None:
            early_s = not_before - time.time()
            if early_s > _EARLY_TOLERANCE_S:
                # A delayed FIFO message: hidden until due; this receive is not a delivery.
                self._change_visibility(names, url, receipt, whole_seconds(early_s))
                return None
            count = max(1, count - 1)
        return Delivery(
            payload=msg.decode_body(message.get("Body", "")),
            queue=names.queue,
            receipt=receipt,
            delivery_count=count,
            message_id=msg.attribute(message, msg.ID) or "",
            lease_expires_at=expires_at,
        )

    # -- settling -------------------------------------------------------------------

    def ack(self, delivery: Delivery) -> None:
        """``DeleteMessage``. A stale receipt (lease ended) or a refused one does nothing."""
        names, url = self._held(delivery)
        if url is None:
            return
        try:
            self._sqs.call(
                f"delete a message from queue {names.live!r}",
                self._sqs.client.delete_message,
                QueueUrl=url,
                ReceiptHandle=delivery.receipt,
            )
        except SqsRequestError as exc:
            if not _receipt_refused(exc):
                raise
        self._forget(delivery)

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """``DeleteMessageBatch``: 10 per request, per queue. Stale or refused
        receipts do nothing, as with :meth:`ack`."""
        by_queue: dict[str, list[Delivery]] = {}
        for delivery in deliveries:
            by_queue.setdefault(delivery.queue, []).append(delivery)
        for group in by_queue.values():
            held: list[Delivery] = []
            url: str | None = None
            for delivery in group:
                names, held_url = self._held(delivery)
                if held_url is not None:
                    held.append(delivery)
                    url = held_url
            if url is None:
                continue
            entries = [{"Id": str(i), "ReceiptHandle": d.receipt} for i, d in enumerate(held)]
            # Refused entries are receipts SQS no longer honours: a stale ack, ignored.
            self._sqs.batch(
                f"delete {len(held)} messages from queue {names.live!r}",
                self._sqs.client.delete_message_batch,
                url,
                entries,
            )
            for delivery in held:
                self._forget(delivery)

    def nack(self, delivery: Delivery, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        """Requeue: ``ChangeMessageVisibility`` to ``delay_s`` (0 = at once; up to 12 h
        counted from the receive). Without requeue: delete. Stale receipts do nothing."""
        names, url = self._held(delivery)
        if url is None:
            return
        if not requeue:
            self.ack(delivery)
            return
        self._change_visibility(names, url, delivery.receipt, whole_seconds(delay_s))
        self._forget(delivery)

    def extend(self, delivery: Delivery, *, lease_s: float) -> bool:
        """``ChangeMessageVisibility`` to ``ceil(lease_s)``; False if the lease ended
        (by our clock) or SQS refuses the receipt (the message was deleted)."""
        names, url = self._held(delivery)
        if url is None:
            return False
        visibility = whole_seconds(lease_s)
        started = time.time()
        if not self._change_visibility(names, url, delivery.receipt, visibility):
            self._forget(delivery)
            return False
        with self._lock:
            _, sqs_id = self._leases.get(delivery.receipt, (0.0, ""))
            self._leases[delivery.receipt] = (started + visibility, sqs_id)
        return True

    def dead_letter(self, delivery: Delivery, *, reason: str) -> None:
        """Send a copy to the dead-letter queue, then delete the original.

        SQS has no transaction across two queues: if the delete fails (or this
        process dies between the two), the message is both dead and live, never
        neither. A stale receipt does nothing.
        """
        names, url = self._held(delivery)
        if url is None:
            return
        self._dead.bury(names, delivery, reason)
        self.ack(delivery)

    def _change_visibility(self, names: QueueNames, url: str, receipt: str, seconds: int) -> bool:
        """False when SQS refuses the receipt (deleted, or no longer in flight)."""
        try:
            self._sqs.call(
                f"change a message's visibility in queue {names.live!r}",
                self._sqs.client.change_message_visibility,
                QueueUrl=url,
                ReceiptHandle=receipt,
                VisibilityTimeout=seconds,
            )
        except SqsRequestError as exc:
            if _receipt_refused(exc):
                return False
            raise
        return True

    def _held(self, delivery: Delivery) -> tuple[QueueNames, str | None]:
        """The queue of ``delivery`` and its URL; URL None when the lease has ended."""
        names = self._queue(delivery.queue)
        with self._lock:
            ends = self._leases.get(delivery.receipt, (delivery.lease_expires_at, ""))[0]
        if ends and time.time() >= ends - _LEASE_MARGIN_S:
            self._forget(delivery)
            return names, None
        return names, self._live_url(names, create=False)

    def _forget(self, delivery: Delivery) -> None:
        with self._lock:
            lease = self._leases.pop(delivery.receipt, None)
            if lease is not None and self._holding.get(lease[1]) == delivery.receipt:
                del self._holding[lease[1]]

    # -- queue management ---------------------------------------------------------

    def purge(self, queue: str) -> int:
        """``PurgeQueue`` (it reaches delayed and leased messages too); returns the
        queue's size just before. SQS allows one purge per queue every 60 s, and
        may also delete messages sent during the purge."""
        names = self._queue(queue)
        url = self._sqs.queue_url(names.live, create=False)
        if url is None:
            return 0
        count = self._size(names, url)
        if count:
            self._sqs.call(
                f"purge queue {names.live!r}", self._sqs.client.purge_queue, QueueUrl=url
            )
        return count

    def size(self, queue: str) -> int:
        """Ready + in flight + delayed, from SQS's approximate counters."""
        names = self._queue(queue)
        url = self._sqs.queue_url(names.live, create=False)
        return 0 if url is None else self._size(names, url)

    def _size(self, names: QueueNames, url: str) -> int:
        response = self._sqs.call(
            f"count the messages of queue {names.live!r}",
            self._sqs.client.get_queue_attributes,
            QueueUrl=url,
            AttributeNames=list(_SIZE_ATTRIBUTES),
        )
        found = {str(key): value for key, value in response.get("Attributes", {}).items()}
        return sum(int(found.get(name, "0")) for name in _SIZE_ATTRIBUTES)

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        return self._dead.read(self._queue(queue), limit=limit)

    def requeue_dead_letters(self, queue: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        names = self._queue(queue)
        return self._dead.requeue(
            names, dead_letter_ids, lambda: self._live_url(names, create=self.options.create_queues)
        )

    def purge_dead_letters(self, queue: str) -> int:
        return self._dead.purge(self._queue(queue))

    def close(self) -> None:
        """Close the HTTP connections. Calling it twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._sqs.close()

    # -- names and URLs -------------------------------------------------------------

    def _queue(self, queue: str) -> QueueNames:
        names = self._names.get(queue)
        if names is None:
            names = queue_names(queue, self.options)
            with self._lock:
                self._names[queue] = names
        return names

    def _live_url(self, names: QueueNames, *, create: bool) -> str:
        url = self._sqs.queue_url(
            names.live, create=create, attributes=lambda: self._live_attributes(names)
        )
        if url is None:
            raise TransportError(
                f"{self._sqs.describe()}: queue {names.live!r} does not exist, and the option "
                "create_queues is off; create it (and its dead-letter queue "
                f"{names.dead!r}) first"
            )
        return url

    def _live_attributes(self, names: QueueNames) -> dict[str, str]:
        attributes = {
            "VisibilityTimeout": str(self.options.visibility_timeout_s),
            "MaximumMessageSize": str(self.options.message_size_limit_bytes),
        }
        if self.options.fifo:
            attributes["FifoQueue"] = "true"
        if self.options.max_receive_count is not None:
            arn = self._dead.arn(names)
            attributes["RedrivePolicy"] = (
                f'{{"deadLetterTargetArn":"{arn}",'
                f'"maxReceiveCount":"{self.options.max_receive_count}"}}'
            )
        return attributes


def _receipt_refused(exc: SqsRequestError) -> bool:
    if exc.code in RECEIPT_REFUSED:
        return True
    # Real SQS: "Value ... for parameter ReceiptHandle is invalid. Reason: Message does
    # not exist or is not available for visibility timeout change."
    return exc.code == "InvalidParameterValue" and "receipthandle" in str(exc).lower()


def _size_bounded_chunks(
    entries: Sequence[SendMessageBatchRequestEntryTypeDef], limit_bytes: int
) -> list[list[SendMessageBatchRequestEntryTypeDef]]:
    """Entries in batches of at most 10 whose total size stays within SQS's limit."""
    chunks: list[list[SendMessageBatchRequestEntryTypeDef]] = []
    current: list[SendMessageBatchRequestEntryTypeDef] = []
    size = 0
    for entry in entries:
        entry_size = len(entry["MessageBody"]) + msg.attributes_size(
            entry.get("MessageAttributes", {})
        )
        if current and (len(current) == BATCH_SIZE or size + entry_size > limit_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry_size
    if current:
        chunks.append(current)
    return chunks


def create_transport(url: str, options: Mapping[str, Any]) -> Transport:
    """Build an :class:`SqsTransport` for an ``sqs://`` URL (see :mod:`.options`)."""
    return SqsTransport(parse_url(url, options))
