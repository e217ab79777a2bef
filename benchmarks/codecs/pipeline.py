"""A message's trip through Petiole's own components, as a producer and a worker
make it (``petiole.sending.Sender._publish``; ``Worker._accept`` then
``TaskRunner._decode_body``), so the figures include framing, not only a
library's call.

Encode: serialize ``[args, kwargs]``, compress with the codec (always: the
matrix is what chooses ``compression_min_bytes``), frame (v1 unsigned, v2 with
a signer). Decode: cut the frame, verify its signature, parse and validate the
header block, decode the body through the app (bounded by ``max_body_bytes``),
deserialize with the serializer its content type names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from petiole import Petiole
from petiole.envelope import IDENTITY, Envelope, Frame, task_headers
from petiole.stages import Signer, verify_frame

# Headers as a producer writes them for a plain task: their size is part of
# every message on the wire.
HEADERS = task_headers(
    "6f1c2a0e-3b7d-4c55-9e61-0d2b8f4a7c13", "bench.process", sent_at=1_796_000_000.0
)


@dataclass(frozen=True)
class Pipeline:
    """One serializer and one codec (``identity``: none) of ``app``, and the
    signer a message is signed and verified with (None: unsigned)."""

    app: Petiole
    serializer: str
    codec: str
    signer: Signer | None = None

    def encoder(self, args: list[Any]) -> Callable[[], bytes]:
        """A call that turns ``args`` into a framed message, as a producer does."""
        serializer = self.app.serializer(self.serializer)
        codec = None if self.codec == IDENTITY else self.app.codec(self.codec)
        content_type, signer = serializer.content_type, self.signer

        def encode() -> bytes:
            body, encoding = serializer.dumps([args, {}]), IDENTITY
            if codec is not None:
                body, encoding = codec.encode(body), codec.name
            return Envelope(HEADERS, body, content_type, encoding).to_bytes(signer)

        return encode

    def decoder(self, message: bytes) -> Callable[[], Any]:
        """A call that turns ``message`` back into ``[args, kwargs]``, as a worker does."""
        app, signer = self.app, self.signer

        def decode() -> Any:
            frame = Frame.parse(message)
            verify_frame(frame, signer, require_signature=signer is not None)
            envelope = frame.envelope()
            body = app.decode_body(envelope)
            return app.serializer_for_content_type(envelope.content_type).loads(body)

        return decode


def framer(body: bytes, signer: Signer | None) -> Callable[[], bytes]:
    """Frame an already serialized JSON body: v1 unsigned, v2 signed by ``signer``."""
    envelope = Envelope(HEADERS, body, "application/json")
    return lambda: envelope.to_bytes(signer)


def verifier(message: bytes, signer: Signer | None) -> Callable[[], None]:
    """Cut ``message`` and check its signature, as a worker does before anything else."""

    def verify() -> None:
        verify_frame(Frame.parse(message), signer, require_signature=signer is not None)

    return verify
