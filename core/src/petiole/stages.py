"""Message stages between the envelope and the transport: codecs and signers.

A **codec** compresses (or otherwise encodes) a serialized body; its ``name`` is
the body's ``content_encoding`` on the wire. A producer encodes with the app's
``compression`` codec; a worker decodes with the codec the message names,
bounded by ``max_body_bytes``, so a decompression bomb is refused while it
inflates, never after.

A **signer** signs a framed message (header block and body, see
:mod:`petiole.envelope`) after the envelope is built, and a worker verifies the
raw bytes before it parses or deserializes anything (:func:`verify_frame`).

Both are components registered through hooks (``petiole_codecs``,
``petiole_signers``) like serializers; the core ships ``identity`` and ``zlib``
codecs and the ``hmac-sha256`` signer.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from typing import Protocol, runtime_checkable

from petiole.config import Settings
from petiole.envelope import IDENTITY, Frame
from petiole.errors import (
    CodecError,
    ConfigError,
    DecodeLimitExceeded,
    SignatureError,
)

HMAC_SHA256 = "hmac-sha256"
MIN_HMAC_KEY_BYTES = 32


@runtime_checkable
class Codec(Protocol):
    """Registered through ``petiole_codecs``; named by ``name`` in the
    ``compression`` setting and in a message's ``content_encoding``."""

    name: str

    def encode(self, data: bytes) -> bytes:
        """Encode a serialized body."""
        ...

    def decode(self, data: bytes, *, max_output_bytes: int) -> bytes:
        """Decode a body. Raises :class:`CodecError` on malformed or truncated
        input, and :class:`DecodeLimitExceeded` when the output would exceed
        ``max_output_bytes`` — detected while decoding, having allocated at most
        about that much, never by decoding everything first."""
        ...


@runtime_checkable
class Signer(Protocol):
    """Built by a factory registered through ``petiole_signers``, called with the
    app's settings; named by ``name`` in the ``signer`` setting and recorded in a
    signed message's header block."""

    name: str

    def sign(self, data: bytes) -> bytes:
        """The signature of ``data`` (at most :data:`petiole.envelope.MAX_SIGNATURE_BYTES`)."""
        ...

    def verify(self, data: bytes, signature: bytes) -> None:
        """Return if ``signature`` is a valid signature of ``data`` by this signer's
        key; raise :class:`SignatureError` otherwise (never any other exception)."""
        ...


class IdentityCodec:
    """No encoding: the body as serialized. Still bounded by ``max_output_bytes``."""

    name = IDENTITY

    def encode(self, data: bytes) -> bytes:
        return bytes(data)

    def decode(self, data: bytes, *, max_output_bytes: int) -> bytes:
        if len(data) > max_output_bytes:
            raise DecodeLimitExceeded(self.name, max_output_bytes)
        return bytes(data)


class ZlibCodec:
    """zlib (RFC 1950) from the standard library."""

    name = "zlib"

    def __init__(self, level: int = 6) -> None:
        self.level = level

    def encode(self, data: bytes) -> bytes:
        return zlib.compress(data, self.level)

    def decode(self, data: bytes, *, max_output_bytes: int) -> bytes:
        inflater = zlib.decompressobj()
        try:
            # One byte over the limit is enough to know it is over: the output
            # buffer never grows past that, however far the input would inflate.
            out = inflater.decompress(data, max_output_bytes + 1)
        except zlib.error as exc:
            raise CodecError(f"malformed zlib body: {exc}") from exc
        if len(out) > max_output_bytes:
            raise DecodeLimitExceeded(self.name, max_output_bytes)
        if not inflater.eof:
            raise CodecError("truncated zlib body: the stream does not end")
        if inflater.unused_data:
            extra = len(inflater.unused_data)
            raise CodecError(f"malformed zlib body: {extra} bytes after its end")
        return out


class HmacSha256Signer:
    """HMAC-SHA256 with a shared secret key: every producer and worker holds the
    key, so anyone who can sign can also verify (and the other way round)."""

    name = HMAC_SHA256

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_HMAC_KEY_BYTES:
            raise ConfigError(
                f"the {HMAC_SHA256} signer needs a signing_key of at least "
                f"{MIN_HMAC_KEY_BYTES} bytes, got {len(key)}; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        self._key = bytes(key)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} key=***>"

    def sign(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def verify(self, data: bytes, signature: bytes) -> None:
        if not hmac.compare_digest(self.sign(data), bytes(signature)):
            raise SignatureError(f"the {self.name} signature does not match the message")


def create_hmac_signer(settings: Settings) -> HmacSha256Signer:
    """The ``hmac-sha256`` signer's factory: its key is the ``signing_key`` setting."""
    if not settings.signing_key:
        raise ConfigError(
            f"signer {HMAC_SHA256!r} needs the signing_key setting (PETIOLE_SIGNING_KEY), "
            "the same secret on every producer and worker"
        )
    return HmacSha256Signer(settings.signing_key.encode())


def verify_frame(frame: Frame, signer: Signer | None, *, require_signature: bool) -> None:
    """Check a framed message's signature, before anything in it is parsed.

    A worker with a signer verifies every signed message with it (a signature
    that does not verify is refused, whatever ``require_signature`` says). An
    unsigned message, or a signed one reaching a worker without a signer, is
    refused only when ``require_signature`` is set. Raises :class:`SignatureError`
    with the reason.
    """
    if not frame.signature:
        if require_signature:
            raise SignatureError(
                f"unsigned message (framing v{frame.version}) and this worker has "
                "require_signature set; its producer needs the same signer and signing_key"
            )
        return
    if signer is None:
        if require_signature:
            raise SignatureError(
                "signed message, but this worker has require_signature set and no signer "
                "to verify it with; set the signer setting"
            )
        return
    try:
        signer.verify(frame.signed_data, frame.signature)
    except SignatureError:
        raise
    except Exception as exc:  # a signer's contract is SignatureError; anything else still refuses
        raise SignatureError(
            f"signer {signer.name!r} could not verify the message: {type(exc).__name__}: {exc}"
        ) from exc
