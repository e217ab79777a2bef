"""Where a zstd frame ends, read from its structure before anything is decompressed.

zstandard decodes frames but cannot say where one ends without decoding all of
it, and its bounded reader returns a truncated frame's output as if it were
whole. So the codec reads the frame's layout (RFC 8878, section 3.1.1) first: the
header, then each block's 3-byte header to skip over its content, then the
optional checksum. That refuses a truncated frame, and anything after it, with
a precise reason, for the cost of one small step per block (128 KiB of output
each, for a Petiole producer's frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import zstandard

from petiole.plugin_api import CodecError

MAGIC = zstandard.FRAME_HEADER  # 28 b5 2f fd
SKIPPABLE_MAGIC_SUFFIX = b"\x2a\x4d\x18"  # 0x184D2A5?, little-endian
_MIN_HEADER_BYTES = 5  # magic and the frame header descriptor
_BLOCK_HEADER_BYTES = 3
_CHECKSUM_BYTES = 4
_RLE_BLOCK, _RESERVED_BLOCK = 1, 3


@dataclass(frozen=True)
class ZstdFrame:
    """One zstd frame at the start of a body, as its header describes it."""

    end: int  # bytes from the start of the body to the frame's end
    content_bytes: int | None  # as the header declares it; None when it does not
    window_bytes: int
    dictionary_id: int


def read_frame(data: bytes) -> ZstdFrame:
    """The frame ``data`` starts with. Raises :class:`CodecError` when ``data``
    does not start with a zstd frame, or the frame is cut short."""
    if not data:
        raise CodecError("truncated zstd body: it is empty")
    if not _starts_like_a_frame(data):
        if _is_skippable(data):
            raise CodecError(
                "malformed zstd body: it starts with a skippable frame, "
                "which a Petiole producer never writes"
            )
        raise CodecError("malformed zstd body: it does not start with zstd's magic number")
    if len(data) < _MIN_HEADER_BYTES:
        raise CodecError("truncated zstd body: the frame header is cut short")
    try:
        header_bytes = zstandard.frame_header_size(data)
        if len(data) < header_bytes:
            raise CodecError("truncated zstd body: the frame header is cut short")
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as exc:  # reserved bits set, and the like
        raise CodecError(f"malformed zstd body: {exc}") from exc
    end = _blocks_end(data, header_bytes)
    if params.has_checksum:
        end += _CHECKSUM_BYTES
        if end > len(data):
            raise CodecError("truncated zstd body: the frame's checksum is cut short")
    declared = params.content_size
    return ZstdFrame(
        end=end,
        content_bytes=None if declared == zstandard.CONTENTSIZE_UNKNOWN else declared,
        window_bytes=params.window_size,
        dictionary_id=params.dict_id,
    )


def describe_extra(extra: bytes) -> str:
    """What the bytes after a frame are, for an error message."""
    if _starts_like_a_frame(extra) and len(extra) >= len(MAGIC):
        return "a second zstd frame"
    if _is_skippable(extra):
        return "a skippable frame"
    return "not a zstd frame"


def _starts_like_a_frame(data: bytes) -> bool:
    head = data[: len(MAGIC)]
    return bool(head) and MAGIC.startswith(head)


def _is_skippable(data: bytes) -> bool:
    return (
        len(data) >= len(MAGIC) and data[0] & 0xF0 == 0x50 and data[1:4] == SKIPPABLE_MAGIC_SUFFIX
    )


def _blocks_end(data: bytes, offset: int) -> int:
    """Where the block after ``offset`` that is marked last ends."""
    size = len(data)
    while True:
        if offset + _BLOCK_HEADER_BYTES > size:
            raise CodecError("truncated zstd body: the frame ends before its last block")
        header = int.from_bytes(data[offset : offset + _BLOCK_HEADER_BYTES], "little")
        last, block_type, block_bytes = header & 1, (header >> 1) & 3, header >> 3
        if block_type == _RESERVED_BLOCK:
            raise CodecError(f"malformed zstd body: a block of reserved type at byte {offset}")
        # An RLE block holds the one byte it repeats; raw and compressed blocks their size.
        offset += _BLOCK_HEADER_BYTES + (1 if block_type == _RLE_BLOCK else block_bytes)
        if offset > size:
            raise CodecError("truncated zstd body: a block is cut short")
        if last:
            return offset
