"""The message envelope, protocol version 1 (documented in docs/protocol.md).

An :class:`Envelope` is an immutable value: task metadata in ``headers`` (plain
JSON types only, readable without touching the body), the serialized ``body``,
and the explicit ``content_type`` and ``content_encoding`` of that body.

Transports store envelopes either field by field (a table row, message
attributes) or as one byte string in the canonical framing of :meth:`to_bytes`::

    b"PET1" | header length (4 bytes, big-endian) | header JSON (UTF-8) | body

The header JSON holds ``headers`` plus ``content_type`` and ``content_encoding``
under reserved keys, so a worker can route, expire or reject a message it does
not trust by parsing only the header block.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from petiole.errors import ProtocolError

PROTOCOL_VERSION = 1
MAGIC = b"PET1"
_LENGTH = struct.Struct(">I")
IDENTITY = "identity"

# Header names and the types they must have; anything else a worker sees is a
# ProtocolError and the message goes to the dead-letter store.
HEADER_TYPES: Mapping[str, tuple[type, ...]] = MappingProxyType(
    {
        "protocol": (int,),
        "id": (str,),
        "task": (str,),
        "retries": (int,),
        "eta": (float, int, type(None)),
        "expires": (float, int, type(None)),
        "root_id": (str, type(None)),
        "parent_id": (str, type(None)),
        "group_id": (str, type(None)),
        "group_index": (int, type(None)),
        "priority": (int, type(None)),
        "callbacks": (list, type(None)),
        "errbacks": (list, type(None)),
        "chain": (list, type(None)),
        "chord": (dict, type(None)),
        "trace": (dict, type(None)),
        "reply_to": (str, type(None)),
        "time_limit": (list, type(None)),
        "origin": (str, type(None)),
        "sent_at": (float, int),
    }
)
REQUIRED_HEADERS = ("protocol", "id", "task")

# Bounds on the header block, checked by producers and workers alike: a hostile
# message must cost a worker one bounded parse, never a RecursionError or a huge
# allocation. Headers carry metadata (and workflow steps); data goes in the body.
MAX_HEADER_BYTES = 1 << 20
MAX_HEADER_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Envelope:
    headers: Mapping[str, Any]
    body: bytes
    content_type: str
    content_encoding: str = IDENTITY

    @property
    def task_id(self) -> str:
        return str(self.headers["id"])

    @property
    def task_name(self) -> str:
        return str(self.headers["task"])

    # Typed views of the headers (validated on parse): callers ask these rather
    # than naming header keys, so the protocol has one owner.

    @property
    def retries(self) -> int:
        return int(self.headers.get("retries") or 0)

    @property
    def eta(self) -> float | None:
        """Not before this time (epoch seconds), or None."""
        value = self.headers.get("eta")
        return None if value is None else float(value)

    @property
    def expires(self) -> float | None:
        """Not after this time (epoch seconds), or None."""
        value = self.headers.get("expires")
        return None if value is None else float(value)

    @property
    def priority(self) -> int | None:
        value = self.headers.get("priority")
        return None if value is None else int(value)

    @property
    def root_id(self) -> str | None:
        return self.headers.get("root_id")

    @property
    def parent_id(self) -> str | None:
        return self.headers.get("parent_id")

    @property
    def group_id(self) -> str | None:
        return self.headers.get("group_id")

    @property
    def time_limits(self) -> tuple[float | None, float | None]:
        """This call's own ``(soft_s, hard_s)``; either is None when not set."""
        limits = self.headers.get("time_limit")
        if not isinstance(limits, list) or len(limits) != 2:
            return None, None
        soft, hard = limits
        return (
            float(soft) if isinstance(soft, (int, float)) else None,
            float(hard) if isinstance(hard, (int, float)) else None,
        )

    def replace_headers(self, **changes: Any) -> Envelope:
        """A copy with some headers changed (envelopes themselves never change)."""
        return Envelope(
            {**self.headers, **changes}, self.body, self.content_type, self.content_encoding
        )

    def header_bytes(self) -> bytes:
        """The header block; raises :class:`ProtocolError` if it is over the bounds
        a worker accepts (so the producer learns it, not the dead-letter store)."""
        doc = dict(self.headers)
        doc["content_type"] = self.content_type
        doc["content_encoding"] = self.content_encoding
        try:
            head = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        except RecursionError:
            raise ProtocolError(_too_deep()) from None
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"message headers must be plain JSON values: {exc}") from exc
        _check_bounds(head)
        return head

    def to_bytes(self) -> bytes:
        head = self.header_bytes()
        return b"".join((MAGIC, _LENGTH.pack(len(head)), head, self.body))

    @classmethod
    def from_parts(cls, header_json: bytes | str, body: bytes) -> Envelope:
        """Rebuild from a stored header block and body; validates the headers."""
        head = header_json.encode() if isinstance(header_json, str) else bytes(header_json)
        _check_bounds(head)
        try:
            doc = json.loads(head)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"message headers are not valid JSON: {exc}") from exc
        except RecursionError:
            raise ProtocolError(_too_deep()) from None
        if not isinstance(doc, dict):
            raise ProtocolError("message headers must be a JSON object")
        content_type = doc.pop("content_type", None)
        content_encoding = doc.pop("content_encoding", IDENTITY)
        if not isinstance(content_type, str) or not content_type:
            raise ProtocolError("message has no content_type header")
        if not isinstance(content_encoding, str):
            raise ProtocolError("message header 'content_encoding' must be a string")
        validate_headers(doc)
        return cls(doc, bytes(body), content_type, content_encoding)

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse the canonical framing. Raises :class:`ProtocolError` on anything malformed."""
        if len(data) < 8 or data[:4] != MAGIC:
            raise ProtocolError("not a Petiole v1 message (bad magic bytes)")
        (length,) = _LENGTH.unpack_from(data, 4)
        if 8 + length > len(data):
            raise ProtocolError("truncated message: header block runs past the end")
        return cls.from_parts(data[8 : 8 + length], data[8 + length :])


def peek_header(payload: bytes, name: str) -> Any:
    """The value of header ``name`` in a framed message, or None — for transports
    that route on a header (a FIFO message group, say) without parsing the message
    as a worker does. Anything malformed reads as "no header": the worker, not the
    transport, dead-letters malformed messages with a reason."""
    if len(payload) < 8 or payload[:4] != MAGIC:
        return None
    (length,) = _LENGTH.unpack_from(payload, 4)
    head = payload[8 : 8 + length]
    try:
        _check_bounds(head)
        headers = json.loads(head)
    except (ProtocolError, ValueError, RecursionError):
        return None
    return headers.get(name) if isinstance(headers, dict) else None


def _too_deep() -> str:
    return f"message headers are nested more than {MAX_HEADER_DEPTH} levels deep"


def _check_bounds(head: bytes) -> None:
    """Refuse a header block over :data:`MAX_HEADER_BYTES` or nested deeper than
    :data:`MAX_HEADER_DEPTH`, before parsing it."""
    if len(head) > MAX_HEADER_BYTES:
        raise ProtocolError(
            f"message header block is {len(head)} bytes, over the limit of {MAX_HEADER_BYTES}; "
            "pass large values as task arguments (the body), not headers"
        )
    # The count of opening brackets bounds the depth: counted in C, it clears
    # nearly every message without a scan (brackets inside strings only over-count).
    if head.count(b"[") + head.count(b"{") > MAX_HEADER_DEPTH and _depth(head) > MAX_HEADER_DEPTH:
        raise ProtocolError(_too_deep())


def _depth(head: bytes) -> int:
    """The deepest nesting of JSON arrays and objects in ``head`` (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in head:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_HEADER_DEPTH:
                    return deepest
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def validate_headers(headers: Mapping[str, Any]) -> None:
    """Check required headers exist and known headers have the right JSON type.

    Unknown headers are allowed (user headers and newer minor additions);
    a protocol version newer than ours is refused.
    """
    for name in REQUIRED_HEADERS:
        if name not in headers:
            raise ProtocolError(f"message is missing the required header {name!r}")
    for name, value in headers.items():
        expected = HEADER_TYPES.get(name)
        if expected is None:
            continue
        # bool is an int subclass; a boolean where a number belongs is still wrong.
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in expected)
            raise ProtocolError(
                f"message header {name!r} must be {names}, got {type(value).__name__} {value!r}"
            )
    if headers["protocol"] > PROTOCOL_VERSION:
        raise ProtocolError(
            f"message uses protocol version {headers['protocol']}, this Petiole speaks "
            f"up to {PROTOCOL_VERSION}; upgrade the worker"
        )
