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
``petiole_signers``) like serializers; the core ships the ``identity``, ``zlib``,
``bzip2`` and ``lzma`` codecs (all on the standard library) and the
``hmac-sha256`` signer.

Every compressing codec here decodes strictly: exactly one complete stream, as a
Petiole producer writes it. A truncated stream, bytes after its end (garbage, or
a second stream) and corrupt data raise :class:`CodecError` saying which.
"""

from __future__ import annotations

import bz2
import hashlib
import hmac
import lzma
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
        return _one_whole_stream(
            self.name, out, max_output_bytes, eof=inflater.eof, unused=inflater.unused_data
        )


BZIP2_MAGIC = b"BZh"


class Bzip2Codec:
    """bzip2 from the standard library (:mod:`bz2`), named ``bzip2`` as Celery names it.

    ``level`` (1-9) is bzip2's block size in units of 100 kB. The default, 9, is
    the format's own (``bzip2``'s and :func:`bz2.compress`'s), chosen on these
    figures: a body smaller than one block compresses the same at every level
    (10 KiB of JSON: 1930 bytes, about 1.5 ms, at 1 and at 9), and 1 MiB of JSON
    comes out 10% smaller at 9 than at 1 (ratio 0.116 against 0.129) for about
    15% more time encoding. bzip2 is the slowest codec here (see petiole-zstd's
    README for every codec's figures); use it for its ratio, or to talk to
    producers that chose it.

    Decoding memory is bounded without a setting: the decoder's state is set by
    the stream header's block size, at most about 3.6 MB (level 9), and the
    output stops one byte past ``max_output_bytes``.
    """

    name = "bzip2"

    def __init__(self, level: int = 9) -> None:
        if not 1 <= level <= 9:
            raise ConfigError(f"bzip2 compression level must be 1 to 9, got {level}")
        self.level = level

    def encode(self, data: bytes) -> bytes:
        return bz2.compress(data, self.level)

    def decode(self, data: bytes, *, max_output_bytes: int) -> bytes:
        decompressor = bz2.BZ2Decompressor()
        try:
            out = decompressor.decompress(data, max_output_bytes + 1)
        except OSError as exc:  # bz2's only error: "Invalid data stream"
            raise CodecError(f"malformed bzip2 body: {exc}") from exc
        return _one_whole_stream(
            self.name,
            out,
            max_output_bytes,
            eof=decompressor.eof,
            unused=decompressor.unused_data,
            magic=BZIP2_MAGIC,
        )


XZ_MAGIC = b"\xfd7zXZ\x00"
# The smallest dictionary LZMA2 has, and what liblzma's decoder needs besides
# its dictionary: 64 KiB with liblzma 5.x (measured: 65592 bytes), doubled for
# other versions.
LZMA2_MIN_DICT_BYTES = 4096
LZMA_DECODER_OVERHEAD_BYTES = 128 * 1024
# Each preset's dictionary (xz(1), "Presets"): the encoder never uses more.
_LZMA_PRESET_DICT_BYTES = (
    256 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
    4 << 20,
    8 << 20,
    8 << 20,
    16 << 20,
    32 << 20,
    64 << 20,
)
# liblzma's LZMA_MEMLIMIT_ERROR as the lzma module words it (CPython 3.3+).
_LZMA_MEMLIMIT_MESSAGE = "Memory usage limit"


def lzma2_dict_bytes(size: int) -> int:
    """The dictionary size an .xz header records for a requested ``size``: LZMA2
    stores 2**n or 3 * 2**(n-1) bytes, at least 4 KiB, rounding up."""
    size = max(size, LZMA2_MIN_DICT_BYTES)
    power = 1 << (size - 1).bit_length()
    return power * 3 // 4 if power * 3 // 4 >= size else power


def lzma_decoder_memlimit(max_output_bytes: int) -> int:
    """The memory liblzma may use to decode a body of at most ``max_output_bytes``.

    A dictionary larger than the whole output is never used, so a Petiole
    producer (which sizes its dictionary to the body) writes one of at most
    :func:`lzma2_dict_bytes` of the limit; the memlimit is that plus the
    decoder's fixed state. A stream whose header asks for more (a crafted
    header, or a producer using a large fixed dictionary for a small body) is
    refused before liblzma allocates its dictionary. With the default
    ``max_body_bytes`` (64 MiB) every xz preset, 0 to 9, decodes.
    """
    return lzma2_dict_bytes(max_output_bytes) + LZMA_DECODER_OVERHEAD_BYTES


class LzmaCodec:
    """LZMA2 in the .xz container (CRC64 checked) from the standard library
    (:mod:`lzma`), named ``lzma``.

    ``level`` is the xz preset, 0-9. Its dictionary is shrunk to the body's size
    (a dictionary larger than the input is never used): the ratio stays the
    same, a worker need not allocate more than the body to decode it (see
    :func:`lzma_decoder_memlimit`), and encoding gets faster, since liblzma sets
    up match finders sized to the dictionary (10 KiB of JSON at preset 6: 3.0 ms
    instead of 4.2 ms with the preset's 8 MiB dictionary).

    The default, 6, is xz's own, chosen on these figures: presets 4 to 9 find
    longer matches than 0 to 3, and on JSON that is the point of choosing lzma
    (10 KiB: ratio 0.216 at 6 against 0.237 at 3, in 3.0 ms against 0.6 ms;
    1 MiB: 0.145 against 0.186, in 0.6 s against 0.19 s). Presets 7 to 9 only
    differ from 6 by a larger dictionary, which a body under 8 MiB cannot use.
    """

    name = "lzma"

    def __init__(self, level: int = 6) -> None:
        if not 0 <= level <= 9:
            raise ConfigError(f"lzma compression level (xz preset) must be 0 to 9, got {level}")
        self.level = level

    def encode(self, data: bytes) -> bytes:
        dict_bytes = min(_LZMA_PRESET_DICT_BYTES[self.level], max(len(data), LZMA2_MIN_DICT_BYTES))
        lzma2 = {"id": lzma.FILTER_LZMA2, "preset": self.level, "dict_size": dict_bytes}
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, filters=[lzma2])

    def decode(self, data: bytes, *, max_output_bytes: int) -> bytes:
        decompressor = lzma.LZMADecompressor(
            format=lzma.FORMAT_XZ, memlimit=lzma_decoder_memlimit(max_output_bytes)
        )
        try:
            out = decompressor.decompress(data, max_output_bytes + 1)
        except lzma.LZMAError as exc:
            if str(exc).startswith(_LZMA_MEMLIMIT_MESSAGE):
                # Its dictionary is larger than any body under the limit needs.
                raise DecodeLimitExceeded(self.name, max_output_bytes) from exc
            raise CodecError(f"malformed lzma body: {exc}") from exc
        return _one_whole_stream(
            self.name,
            out,
            max_output_bytes,
            eof=decompressor.eof,
            unused=decompressor.unused_data,
            magic=XZ_MAGIC,
        )


def _one_whole_stream(
    codec: str, out: bytes, limit: int, *, eof: bool, unused: bytes, magic: bytes = b""
) -> bytes:
    """``out`` if it is one whole stream's output within ``limit``, decoded with
    ``limit + 1`` as the decompressor's ``max_length``."""
    if len(out) > limit:
        raise DecodeLimitExceeded(codec, limit)
    if not eof:  # every byte was read (the output did not reach its cap): it was cut short
        raise CodecError(f"truncated {codec} body: the stream does not end")
    if unused:
        what = "a second stream" if magic and unused.startswith(magic) else "not part of it"
        raise CodecError(
            f"malformed {codec} body: {len(unused)} bytes after its end ({what}); "
            "a Petiole producer writes one stream per body"
        )
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
