"""The message envelope and its framing (documented in docs/protocol.md).

An :class:`Envelope` is an immutable value: task metadata in ``headers`` (plain
JSON types only, readable without touching the body), the serialized ``body``,
and the explicit ``content_type`` and ``content_encoding`` of that body.

Transports store envelopes either field by field (a table row, message
attributes) or as one byte string in the canonical framing of :meth:`Envelope.to_bytes`.
Unsigned messages use framing v1; signed ones framing v2, whose signature slot
sits between the header block and the body::

    v1: b"PET1" | header length (4) | header JSON | body
    v2: b"PET2" | header length (4) | header JSON | signature length (4) | signature | body

Lengths are unsigned big-endian. The signature covers the v2 message without
its signature slot (magic, header length, header block, body:
:attr:`Frame.signed_data`); the header block names the signer under ``signer``.
Workers read both framings, so v1 messages already in a queue still run.

The header JSON holds ``headers`` plus ``content_type`` and ``content_encoding``
(and ``signer``) under reserved keys, so a worker can route, expire or reject a
message it does not trust by parsing only the header block.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from petiole.errors import ProtocolError
from petiole.ids import current_pid
from petiole.request import Request
from petiole.serializers import compact_json_encoder

# The version of the header block's meaning (the ``protocol`` header). The
# framing has its own version, in the magic bytes: v2 added a signature slot
# and changed no header, so signed and unsigned messages both say protocol 1.
PROTOCOL_VERSION = 1
MAGIC = b"PET1"  # framing v1: unsigned
MAGIC_V2 = b"PET2"  # framing v2: with a signature slot
_LENGTH = struct.Struct(">I")
IDENTITY = "identity"
# A signature is a MAC or a public-key signature (certificates travel elsewhere).
MAX_SIGNATURE_BYTES = 1 << 16

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
        "ignore_result": (bool, type(None)),
        "origin": (str, type(None)),
        "sent_at": (float, int),
    }
)
_EXACT_HEADER_TYPES = {name: frozenset(types) for name, types in HEADER_TYPES.items()}
REQUIRED_HEADERS = ("protocol", "id", "task")
# What one attempt of a task says about itself; a retry sets these afresh and
# carries every other header (user headers, workflow, trace context) over.
_ATTEMPT_HEADERS = frozenset(
    {
        "protocol",
        "id",
        "task",
        "retries",
        "eta",
        "expires",
        "root_id",
        "parent_id",
        "group_id",
        "priority",
        "origin",
        "sent_at",
        "time_limit",
    }
)

# Bounds on the header block, checked by producers and workers alike: a hostile
# message must cost a worker one bounded parse, never a RecursionError or a huge
# allocation. Headers carry metadata (and workflow steps); data goes in the body.
MAX_HEADER_BYTES = 1 << 20
MAX_HEADER_DEPTH = 64


class FrameSigner(Protocol):
    """What framing v2 needs of a signer (:class:`petiole.stages.Signer` is one)."""

    name: str

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Workflow:
    """What a message says happens after its task: callbacks on success, errbacks
    on failure, the rest of its chain, the chord it is a member of, and its place
    in a group. Steps are signatures in their JSON form (:mod:`petiole.canvas`
    builds and reads them); this class owns only where they travel."""

    callbacks: Sequence[Any] = ()
    errbacks: Sequence[Any] = ()
    chain: Sequence[Any] = ()
    chord: Mapping[str, Any] | None = None
    group_id: str | None = None
    group_index: int | None = None

    @classmethod
    def of(cls, headers: Mapping[str, Any]) -> Workflow:
        """The workflow of a message's (validated) headers."""
        if _WORKFLOW_HEADERS.isdisjoint(headers):
            return _NO_WORKFLOW  # most messages: asked several times per task, built never
        return cls(
            headers.get("callbacks") or (),
            headers.get("errbacks") or (),
            headers.get("chain") or (),
            headers.get("chord") or None,
            headers.get("group_id"),
            headers.get("group_index"),
        )

    @property
    def continues(self) -> bool:
        """Whether anything runs after the task (a group's place alone is not that)."""
        return bool(self.callbacks or self.errbacks or self.chain or self.chord)

    def headers(self) -> dict[str, Any]:
        """The headers that carry this workflow (only those it sets)."""
        headers: dict[str, Any] = {}
        for name, steps in (
            ("callbacks", self.callbacks),
            ("errbacks", self.errbacks),
            ("chain", self.chain),
        ):
            if steps:
                headers[name] = list(steps)
        if self.chord is not None:
            headers["chord"] = dict(self.chord)
        if self.group_id is not None:
            headers["group_id"] = self.group_id
        if self.group_index is not None:
            headers["group_index"] = self.group_index
        return headers

    def labelled_steps(self) -> Iterator[tuple[str, Any]]:
        """Every step with where it travels (for errors), the chord's callback last.
        Raises :class:`ValueError` when the chord lacks its id or size."""
        for name, steps in (
            ("callbacks", self.callbacks),
            ("errbacks", self.errbacks),
            ("chain", self.chain),
        ):
            for i, step in enumerate(steps):
                yield f"header {name}[{i}]", step
        if self.chord:
            if not isinstance(self.chord.get("id"), str) or type(self.chord.get("size")) is not int:
                raise ValueError("header chord needs a string 'id' and an integer 'size'")
            yield "header chord.body", self.chord.get("body")


# Built once; headers are plain values the sender built: a cycle among them
# fails as nesting too deep, which header_bytes reports.
_encode_headers = compact_json_encoder(catch_cycles=False)
_WORKFLOW_HEADERS = frozenset(
    ("callbacks", "errbacks", "chain", "chord", "group_id", "group_index")
)
_NO_WORKFLOW = Workflow()
# What task_headers sets on every message (null ones left out): never a user's.
_OWN_HEADERS = _ATTEMPT_HEADERS - {"group_id", "time_limit"}


def task_headers(
    task_id: str,
    task_name: str,
    *,
    sent_at: float,
    retries: int = 0,
    eta: float | None = None,
    expires: float | None = None,
    priority: int | None = None,
    time_limits: tuple[float | None, float | None] = (None, None),
    root_id: str | None = None,
    parent_id: str | None = None,
    workflow: Workflow | None = None,
    reply_to: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The headers of a task message: ``extra`` (user headers) overlaid with the
    protocol's own. ``root_id`` defaults to the task itself (a new workflow).
    ``reply_to`` is where the sender receives the task's results, when its result
    backend delivers them to the sender (:class:`~petiole.backend.RepliesToSender`).
    Optional headers that would be null are left out (an absent header reads as
    null): fewer bytes to write, send and parse on every message."""
    headers: dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "id": task_id,
        "task": task_name,
        "retries": retries,
        "root_id": root_id or task_id,
        "origin": str(current_pid()),
        "sent_at": sent_at,
    }
    if eta is not None:
        headers["eta"] = eta
    if expires is not None:
        headers["expires"] = expires
    if parent_id is not None:
        headers["parent_id"] = parent_id
    if priority is not None:
        headers["priority"] = priority
    if time_limits[0] is not None or time_limits[1] is not None:
        headers["time_limit"] = list(time_limits)
    if workflow is not None:
        headers.update(workflow.headers())
    if reply_to is not None:
        headers["reply_to"] = reply_to
    if extra:
        # User headers first; the protocol's own replace any of the same name, even
        # those left out here as null.
        headers = {**{k: v for k, v in extra.items() if k not in _OWN_HEADERS}, **headers}
    return headers


def retry_headers(request: Request, *, eta: float, sent_at: float) -> dict[str, Any]:
    """The headers of the next attempt of ``request``'s task: the same id, lineage,
    expiry, priority, time limits and workflow, one more retry, due at ``eta``."""
    own = request.headers
    limits = own.get("time_limit") or [None, None]
    headers = task_headers(
        request.id,
        request.task,
        sent_at=sent_at,
        retries=request.retries + 1,
        eta=eta,
        expires=request.expires,
        priority=own.get("priority"),
        time_limits=(limits[0], limits[1]),
        root_id=request.root_id or request.id,
        parent_id=request.parent_id,
        extra={k: v for k, v in own.items() if k not in _ATTEMPT_HEADERS},
    )
    headers["group_id"] = request.group_id
    return headers


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

    @property
    def workflow(self) -> Workflow:
        return Workflow.of(self.headers)

    def request(
        self,
        *,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        queue: str,
        delivery_count: int,
        hostname: str,
        eager: bool = False,
    ) -> Request:
        """The :class:`~petiole.request.Request` a task running this message sees,
        given its decoded body."""
        return Request(
            id=self.task_id,
            task=self.task_name,
            args=tuple(args),
            kwargs=kwargs,
            retries=self.retries,
            delivery_count=delivery_count,
            queue=queue,
            eta=self.eta,
            expires=self.expires,
            root_id=self.root_id,
            parent_id=self.parent_id,
            group_id=self.group_id,
            headers=self.headers,
            hostname=hostname,
            eager=eager,
        )

    def retried(self) -> Envelope:
        """The next attempt, run at once (eager mode): one more retry."""
        return self.replace_headers(retries=self.retries + 1)

    def replace_headers(self, **changes: Any) -> Envelope:
        """A copy with some headers changed (envelopes themselves never change)."""
        return Envelope(
            {**self.headers, **changes}, self.body, self.content_type, self.content_encoding
        )

    def header_bytes(self, *, signer: str | None = None) -> bytes:
        """The header block (naming ``signer`` when given); raises :class:`ProtocolError`
        if it is over the bounds a worker accepts (so the producer learns it, not
        the dead-letter store)."""
        # Keys of the block the framing owns replace any header of the same name.
        doc = {
            **self.headers,
            "content_type": self.content_type,
            "content_encoding": self.content_encoding,
        }
        if signer is not None:
            doc["signer"] = signer
        elif "signer" in doc:
            del doc["signer"]
        try:
            head = _encode_headers(doc).encode()
        except RecursionError:
            raise ProtocolError(_too_deep()) from None
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"message headers must be plain JSON values: {exc}") from exc
        _check_bounds(head)
        return head

    def to_bytes(self, signer: FrameSigner | None = None) -> bytes:
        """The canonical framing: v1 when unsigned, v2 signed by ``signer``."""
        if signer is None:
            head = self.header_bytes()
            return b"".join((MAGIC, _LENGTH.pack(len(head)), head, self.body))
        head = self.header_bytes(signer=signer.name)
        prefix = b"".join((MAGIC_V2, _LENGTH.pack(len(head)), head))
        signature = bytes(signer.sign(prefix + self.body))
        if not signature or len(signature) > MAX_SIGNATURE_BYTES:
            raise ProtocolError(
                f"signer {signer.name!r} made a signature of {len(signature)} bytes; "
                f"a signature is 1 to {MAX_SIGNATURE_BYTES} bytes"
            )
        return b"".join((prefix, _LENGTH.pack(len(signature)), signature, self.body))

    @classmethod
    def from_parts(cls, header_json: bytes | str, body: bytes) -> Envelope:
        """Rebuild from a stored header block and body; validates the headers."""
        head = header_json.encode() if isinstance(header_json, str) else bytes(header_json)
        _check_bounds(head)
        try:
            # UTF-8 without a BOM (what every sender writes) is decoded here, sparing
            # json.loads its detect_encoding(); anything else is read as json.loads reads bytes.
            doc = json.loads(
                head.decode("utf-8", "surrogatepass")
                if head[:1] == b"{" and head[1:2] != b"\0"
                else head
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"message headers are not valid JSON: {exc}") from exc
        except RecursionError:
            raise ProtocolError(_too_deep()) from None
        if not isinstance(doc, dict):
            raise ProtocolError("message headers must be a JSON object")
        content_type = doc.pop("content_type", None)
        content_encoding = doc.pop("content_encoding", IDENTITY)
        signer = doc.pop("signer", None)
        if signer is not None and not isinstance(signer, str):
            raise ProtocolError("message header 'signer' must be a string")
        if not isinstance(content_type, str) or not content_type:
            raise ProtocolError("message has no content_type header")
        if not isinstance(content_encoding, str):
            raise ProtocolError("message header 'content_encoding' must be a string")
        validate_headers(doc)
        return cls(doc, bytes(body), content_type, content_encoding)

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse the canonical framing, v1 or v2, without checking a signature (a
        worker checks it with :func:`petiole.stages.verify_frame` first). Raises
        :class:`ProtocolError` on anything malformed."""
        return Frame.parse(data).envelope()


@dataclass(frozen=True, slots=True)
class Frame:
    """A framed message cut into its parts, none of them parsed: what a signature
    is checked on before anything is trusted. ``signature`` is empty when unsigned."""

    version: int
    header: bytes
    body: bytes
    signature: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> Frame:
        """Cut ``data`` (framing v1 or v2) into its parts; raises :class:`ProtocolError`
        when it is neither, or a length runs past the end."""
        data = bytes(data)
        magic = data[:4]
        if len(data) < 8 or magic not in (MAGIC, MAGIC_V2):
            raise ProtocolError("not a Petiole message (bad magic bytes; PET1 or PET2 expected)")
        (length,) = _LENGTH.unpack_from(data, 4)
        end = 8 + length
        if end > len(data):
            raise ProtocolError("truncated message: header block runs past the end")
        if magic == MAGIC:
            return cls(1, data[8:end], data[end:])
        if end + 4 > len(data):
            raise ProtocolError("truncated message: no signature length after the header block")
        (signature_length,) = _LENGTH.unpack_from(data, end)
        if signature_length > MAX_SIGNATURE_BYTES:
            raise ProtocolError(
                f"message signature is {signature_length} bytes, over the limit of "
                f"{MAX_SIGNATURE_BYTES}"
            )
        body_start = end + 4 + signature_length
        if body_start > len(data):
            raise ProtocolError("truncated message: signature runs past the end")
        return cls(2, data[8:end], data[body_start:], data[end + 4 : body_start])

    @property
    def signed_data(self) -> bytes:
        """What a v2 signature covers: the message without its signature slot."""
        return b"".join((MAGIC_V2, _LENGTH.pack(len(self.header)), self.header, self.body))

    def envelope(self) -> Envelope:
        """Parse and validate the header block (the body stays as it is)."""
        return Envelope.from_parts(self.header, self.body)


def peek_header(payload: bytes, name: str) -> Any:
    """The value of header ``name`` in a framed message, or None — for transports
    that route on a header (a FIFO message group, say) without parsing the message
    as a worker does. Anything malformed reads as "no header": the worker, not the
    transport, dead-letters malformed messages with a reason."""
    try:
        head = Frame.parse(payload).header
        _check_bounds(head)
        headers = json.loads(head)
    except (ProtocolError, ValueError, RecursionError):
        return None
    return headers.get(name) if isinstance(headers, dict) else None


def peek_signer(payload: bytes) -> str | None:
    """The signer a framed message names, or None (unsigned, or malformed)."""
    named = peek_header(payload, "signer")
    return named if isinstance(named, str) else None


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
        exact = _EXACT_HEADER_TYPES.get(name)
        if exact is None or type(value) in exact:  # parsed JSON: exact types, one lookup
            continue
        expected = HEADER_TYPES[name]
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
