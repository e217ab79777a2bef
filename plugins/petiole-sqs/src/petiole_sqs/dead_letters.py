"""The dead-letter store: one SQS queue per queue, ``<queue><dead_letter_suffix>``.

A dead letter is an SQS message holding the original body, with its reason,
delivery count and time as message attributes (see :mod:`._messages`). Its id
is the SQS ``MessageId`` of that message. Messages moved there by SQS itself (a
``RedrivePolicy`` with ``max_receive_count``) have no reason attribute and are
listed with one that says so.

SQS cannot *peek*: reading a message hides it. So listing, requeueing and
purging receive the dead-letter queue's messages with a short visibility
timeout (``_SCAN_VISIBILITY_S``), act on them, and make the rest visible again
at once. Costs and limits of that, stated in the README too:

* every listing is one receive per 10 dead letters plus one visibility change
  per 10 to put them back;
* two of these operations at the same moment see each other's hidden messages
  as absent (a listing may come back short; a requeue-all may miss some);
* SQS keeps a message 14 days at most, so dead letters expire after 14 days.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from petiole.errors import TransportError
from petiole.transport import DeadLetter, Delivery
from petiole_sqs import _messages as msg
from petiole_sqs._client import BATCH_SIZE, SqsClient
from petiole_sqs._names import QueueNames
from petiole_sqs.options import SqsOptions

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, MessageTypeDef

# Long enough for one scan to finish; if the process dies mid-scan, the dead
# letters it hid reappear after this.
_SCAN_VISIBILITY_S = 30
_RETENTION_S = 14 * 24 * 3600  # SQS's maximum
_FIFO_GROUP = "petiole-dead-letters"


class DeadLetterStore:
    """Dead-letter queues of one transport."""

    def __init__(self, sqs: SqsClient, options: SqsOptions) -> None:
        self._sqs = sqs
        self._options = options

    def _url(self, names: QueueNames, *, create: bool) -> str | None:
        return self._sqs.queue_url(names.dead, create=create, attributes=self._attributes)

    def _attributes(self) -> dict[str, str]:
        attributes = {
            "MessageRetentionPeriod": str(_RETENTION_S),
            "MaximumMessageSize": str(self._options.message_size_limit_bytes),
        }
        if self._options.fifo:
            attributes["FifoQueue"] = "true"
        return attributes

    def arn(self, names: QueueNames) -> str:
        """The dead-letter queue's ARN (for a RedrivePolicy), creating the queue."""
        url = self._url(names, create=True)
        assert url is not None  # created
        response = self._sqs.call(
            f"read the ARN of queue {names.dead!r}",
            self._sqs.client.get_queue_attributes,
            QueueUrl=url,
            AttributeNames=["QueueArn"],
        )
        return str(response["Attributes"]["QueueArn"])

    def bury(self, names: QueueNames, delivery: Delivery, reason: str) -> None:
        """Send ``delivery``'s payload to the dead-letter queue with ``reason``."""
        url = self._url(names, create=self._options.create_queues)
        if url is None:
            raise TransportError(
                f"{self._sqs.describe()}: dead-letter queue {names.dead!r} does not exist, "
                "and the option create_queues is off; create it first"
            )
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            msg.REASON: msg.string(msg.truncate_reason(reason) or "(no reason given)"),
            msg.DELIVERIES: msg.number(delivery.delivery_count),
            msg.DEAD_AT: msg.number(time.time()),
        }
        if delivery.message_id:
            attributes[msg.ID] = msg.string(delivery.message_id[: msg.MAX_ID_CHARS])
        extra: dict[str, str] = {}
        if self._options.fifo:
            extra = {"MessageGroupId": _FIFO_GROUP, "MessageDeduplicationId": uuid.uuid4().hex}
        self._sqs.call(
            f"send a dead letter to queue {names.dead!r}",
            self._sqs.client.send_message,
            QueueUrl=url,
            MessageBody=msg.encode_body(delivery.payload),
            MessageAttributes=attributes,
            **extra,
        )

    def read(self, names: QueueNames, *, limit: int) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first (by the time they died)."""
        url = self._url(names, create=False)
        if url is None or limit <= 0:
            return []
        messages = self._scan(names, url, limit)
        try:
            letters = [_dead_letter(names.queue, m) for m in messages]
        finally:
            self._release(names, url, messages)
        return sorted(letters, key=lambda d: (d.dead_at, d.dead_letter_id))

    def requeue(
        self,
        names: QueueNames,
        dead_letter_ids: Sequence[str] | None,
        live_url: Callable[[], str],
    ) -> int:
        """Send dead letters (all, or those ids) back to the live queue as new
        messages (delivery count starts again), then delete them here."""
        url = self._url(names, create=False)
        if url is None:
            return 0
        wanted = None if dead_letter_ids is None else set(dead_letter_ids)
        messages = self._scan(names, url, None)
        chosen = [m for m in messages if wanted is None or m.get("MessageId") in wanted]
        sent: list[MessageTypeDef] = []
        try:
            if chosen:
                sent = self._send_back(names, live_url(), chosen)
                self._delete(names, url, sent)
        finally:
            sent_ids = {id(m) for m in sent}
            self._release(names, url, [m for m in messages if id(m) not in sent_ids])
        if len(sent) < len(chosen):
            raise TransportError(
                f"{self._sqs.describe()}: {len(chosen) - len(sent)} of {len(chosen)} dead letters "
                f"of queue {names.queue!r} could not be requeued (the rest were); they stay "
                "dead letters"
            )
        return len(sent)

    def purge(self, names: QueueNames) -> int:
        """Delete every dead letter this scan can see; return how many."""
        url = self._url(names, create=False)
        if url is None:
            return 0
        messages = self._scan(names, url, None)
        self._delete(names, url, messages)
        return len(messages)

    # -- helpers -------------------------------------------------------------------

    def _scan(self, names: QueueNames, url: str, limit: int | None) -> list[MessageTypeDef]:
        """Receive (and so hide) dead letters until ``limit`` or none are left."""
        found: dict[str, MessageTypeDef] = {}
        while limit is None or len(found) < limit:
            wanted = BATCH_SIZE if limit is None else min(BATCH_SIZE, limit - len(found))
            response = self._sqs.call(
                f"read dead letters from queue {names.dead!r}",
                self._sqs.client.receive_message,
                QueueUrl=url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=0,
                VisibilityTimeout=_SCAN_VISIBILITY_S,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            batch = response.get("Messages", [])
            if not batch:
                break
            for message in batch:
                # A standard queue may hand out a message twice: keep the newest receipt.
                found[message.get("MessageId", message["ReceiptHandle"])] = message
        return list(found.values())

    def _send_back(
        self, names: QueueNames, live_url: str, messages: list[MessageTypeDef]
    ) -> list[MessageTypeDef]:
        """Publish ``messages`` to the live queue; return those SQS accepted."""
        entries: list[dict[str, Any]] = []
        for index, message in enumerate(messages):
            entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.get("Body", "")}
            message_id = msg.attribute(message, msg.ID) or ""
            if message_id:
                entry["MessageAttributes"] = {msg.ID: msg.string(message_id)}
            if self._options.fifo:
                payload = msg.decode_body(entry["MessageBody"])
                entry["MessageGroupId"] = msg.group_id(
                    names.queue, payload, message_id, self._options.message_group
                )
                # A new message: the original's deduplication id may still be remembered.
                entry["MessageDeduplicationId"] = uuid.uuid4().hex
            entries.append(entry)
        refused = self._sqs.batch(
            f"requeue dead letters to queue {names.live!r}",
            self._sqs.client.send_message_batch,
            live_url,
            entries,
        )
        return [m for i, m in enumerate(messages) if str(i) not in refused]

    def _delete(self, names: QueueNames, url: str, messages: list[MessageTypeDef]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        # Refused entries were deleted already (a concurrent purge): nothing to do.
        self._sqs.batch(
            f"delete dead letters from queue {names.dead!r}",
            self._sqs.client.delete_message_batch,
            url,
            entries,
        )

    def _release(self, names: QueueNames, url: str, messages: list[MessageTypeDef]) -> None:
        """Make scanned messages visible again (refusals: deleted meanwhile; ignored)."""
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ]
        self._sqs.batch(
            f"put back dead letters in queue {names.dead!r}",
            self._sqs.client.change_message_visibility_batch,
            url,
            entries,
        )


def _dead_letter(queue: str, message: MessageTypeDef) -> DeadLetter:
    reason = msg.attribute(message, msg.REASON)
    count = msg.float_attribute(message, msg.DELIVERIES)
    dead_at = msg.float_attribute(message, msg.DEAD_AT)
    if reason is None:
        reason = (
            "moved here by SQS (the queue's RedrivePolicy: received more than "
            "max_receive_count times)"
        )
    return DeadLetter(
        dead_letter_id=message.get("MessageId", ""),
        queue=queue,
        reason=reason,
        delivery_count=int(count) if count is not None else msg.receive_count(message),
        dead_at=dead_at if dead_at is not None else msg.sent_at(message),
        payload=msg.decode_body(message.get("Body", "")),
    )
