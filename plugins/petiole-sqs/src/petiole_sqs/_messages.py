"""How a Petiole payload rides in an SQS message, both ways.

SQS bodies are text restricted to XML characters, so the payload's bytes travel
base64-encoded in the body (4 bytes of body per 3 of payload). Everything else
is a message attribute, all counted by SQS against the message size limit:

``petiole.id``         the ``message_id`` given to publish (the task id), if any
``petiole.not_before`` FIFO queues only: wall-clock time before which the message
                       is not handed out (FIFO queues have no per-message delay)
``petiole.reason``     dead letters: why the message was dead-lettered
``petiole.deliveries`` dead letters: its delivery count when it died
``petiole.dead_at``    dead letters: when, in seconds since the epoch
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from petiole.envelope import peek_header
from petiole.errors import TransportError

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, MessageTypeDef

ID = "petiole.id"
NOT_BEFORE = "petiole.not_before"
REASON = "petiole.reason"
DELIVERIES = "petiole.deliveries"
DEAD_AT = "petiole.dead_at"

#: Header of a task message that names its FIFO message group (a user header,
#: set with ``apply_async(headers={GROUP_HEADER: "customer-42"})``).
GROUP_HEADER = "x_sqs_message_group_id"

#: Room kept for message attributes below SQS's size limit: a dead letter carries
#: its reason, delivery count, time and id besides the payload.
ATTRIBUTE_ROOM_BYTES = 4096
MAX_REASON_BYTES = 2048
MAX_ID_CHARS = 256
_TRUNCATED = " ...[truncated]"


def max_payload_bytes(message_size_limit_bytes: int) -> int:
    """The largest payload whose base64 body and attributes fit in the limit."""
    return (message_size_limit_bytes - ATTRIBUTE_ROOM_BYTES) // 4 * 3


def encode_body(payload: bytes) -> str:
    return base64.b64encode(payload).decode("ascii")


def decode_body(body: str) -> bytes:
    """The payload; a body that is not base64 (a message another tool sent) comes
    back as its UTF-8 bytes, for the worker to dead-letter as malformed."""
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return body.encode("utf-8", errors="surrogateescape")


def string(value: str) -> MessageAttributeValueTypeDef:
    return {"DataType": "String", "StringValue": value}


def number(value: float) -> MessageAttributeValueTypeDef:
    return {"DataType": "Number", "StringValue": repr(float(value))}


def attributes_size(attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes SQS counts for ``attributes``: name, data type and value of each."""
    size = 0
    for name, value in attributes.items():
        text = str(value.get("StringValue", ""))
        size += len(name.encode()) + len(str(value["DataType"]).encode()) + len(text.encode())
    return size


def truncate_reason(reason: str) -> str:
    data = reason.encode("utf-8")
    if len(data) <= MAX_REASON_BYTES:
        return reason
    keep = MAX_REASON_BYTES - len(_TRUNCATED)
    return data[:keep].decode("utf-8", errors="ignore") + _TRUNCATED


def attribute(message: MessageTypeDef, name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name)
    return None if value is None else value.get("StringValue")


def float_attribute(message: MessageTypeDef, name: str) -> float | None:
    text = attribute(message, name)
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def receive_count(message: MessageTypeDef) -> int:
    text = message.get("Attributes", {}).get("ApproximateReceiveCount", "1")
    return int(text) if text.isdigit() else 1


def sent_at(message: MessageTypeDef) -> float:
    text = message.get("Attributes", {}).get("SentTimestamp", "0")
    return int(text) / 1000 if text.isdigit() else 0.0


def deduplication_id(message_id: str, payload: bytes) -> str:
    """FIFO deduplication id: the task id plus a digest of the exact payload.

    Re-sending the same message (a producer retrying a publish whose reply was
    lost) is deduplicated; a *different* message with the same task id (a retry
    with a higher ``retries`` header, a re-delay) is not silently dropped.
    """
    digest = hashlib.sha256(message_id.encode() + b"\0" + payload).hexdigest()[:32]
    return f"{message_id[:90]}-{digest}" if message_id else digest


def group_id(queue: str, payload: bytes, message_id: str, message_group: str) -> str:
    """FIFO message group: the :data:`GROUP_HEADER` header of the message if set,
    else the task id (``message_group = "task"``) or the queue name (``"queue"``)."""
    header = group_header(payload)
    if header is not None:
        if not isinstance(header, str) or not 1 <= len(header) <= 128 or not header.isascii():
            raise TransportError(
                f"header {GROUP_HEADER!r} must be 1-128 ASCII characters, got {header!r}"
            )
        return header
    if message_group == "task" and message_id:
        return message_id[:128]
    return queue[:128]


def group_header(payload: bytes) -> Any:
    """The value of :data:`GROUP_HEADER` in a Petiole envelope, or None (anything
    malformed reads as no header: the worker dead-letters it with a reason)."""
    return peek_header(payload, GROUP_HEADER)
