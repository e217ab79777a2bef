"""The ``zstd`` codec: one Zstandard frame per body, decoded within a bound.

zstandard's one-shot ``decompress`` allocates whatever size the frame's header
declares (its ``max_output_size`` only applies when the header declares none),
and its ``decompressobj`` returns all the output at once; neither bounds a
decompression bomb. So a body is decoded in this order:

1. its layout (:mod:`petiole_zstd._frames`): exactly one whole frame, nothing
   after it, no dictionary;
2. its header: a declared size over ``max_output_bytes`` is refused at once, and
   so is a window (the history the decoder keeps, allocated up front) larger
   than ``max_output_bytes``, which no body under the limit needs;
3. its content, through ``stream_reader`` reads that stop one byte past the
   declared size (or past ``max_output_bytes`` when none is declared), so a
   header that lies, or a frame without one, is caught having allocated about
   the limit at most.
"""

from __future__ import annotations

import threading

import zstandard

from petiole.plugin_api import CodecError, ConfigError, DecodeLimitExceeded
from petiole_zstd._frames import describe_extra, read_frame

MIN_LEVEL = 1
MAX_LEVEL = zstandard.MAX_COMPRESSION_LEVEL  # 22
# zstd accepts no window under 1 KiB (ZSTD_WINDOWLOG_ABSOLUTEMIN) nor over 2 GiB.
_MIN_WINDOW_BYTES = 1 << 10
_MAX_WINDOW_BYTES = 1 << 31
# A frame that declares no size is read this much at a time.
_CHUNK_BYTES = 1 << 20


def max_window_bytes(max_output_bytes: int) -> int:
    """The largest window a body of at most ``max_output_bytes`` is decoded with:
    a window never needs to hold more than the whole output."""
    return min(max(max_output_bytes, _MIN_WINDOW_BYTES), _MAX_WINDOW_BYTES)


class ZstdCodec:
    """Zstandard, named ``zstd``: a :class:`~petiole.plugin_api.Codec`.

    Each body is one frame with its size and an XXH64 checksum in it (the
    checksum costs 4 bytes and lets the decoder refuse a corrupt body instead of
    handing it on). Frames from other producers decode too, with or without a
    declared size or checksum, as long as they are one frame without a
    dictionary.

    ``level`` is zstd's, 1 to 22. The default, 3, is zstd's own, chosen on these
    figures (10 KiB of JSON, medians; the README has the rest): level 3 gives
    ratio 0.236 in about 40 us, as zlib's level 6 does in 170 us; level 6 gives
    0.220 for 3.5 times the time, level 19 0.210 for a hundred times; level 1 is
    no faster on small bodies. A worker decodes every level equally fast.
    """

    name = "zstd"

    def __init__(self, level: int = 3) -> None:
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            raise ConfigError(
                f"zstd compression level must be {MIN_LEVEL} to {MAX_LEVEL}, got {level}"
            )
        self.level = level
        # zstandard's compressors and decompressors may not be shared between
        # threads, and building one costs about 25 us, as much as compressing
        # 10 KiB (measured: 53 us with a new compressor, 27 us reusing one), so
        # each thread keeps its own.
        self._local = threading.local()

    def encode(self, data: bytes) -> bytes:
        compressor: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(
                level=self.level, write_checksum=True, write_content_size=True
            )
            self._local.compressor = compressor
        return compressor.compress(data)

    def decode(self, data: bytes, *, max_output_bytes: int) -> bytes:
        frame = read_frame(data)
        if frame.end < len(data):
            extra = data[frame.end :]
            raise CodecError(
                f"malformed zstd body: {len(extra)} bytes after its frame "
                f"({describe_extra(extra)}); a Petiole producer writes one frame per body"
            )
        if frame.dictionary_id:
            raise CodecError(
                f"zstd body compressed with dictionary {frame.dictionary_id}; "
                "the zstd codec decodes frames made without one"
            )
        declared = frame.content_bytes
        if declared is not None and declared > max_output_bytes:
            raise DecodeLimitExceeded(self.name, max_output_bytes)
        window = max_window_bytes(max_output_bytes)
        if frame.window_bytes > window:
            # The decoder would allocate it before producing a byte.
            raise DecodeLimitExceeded(self.name, max_output_bytes)
        reader = self._decompressor(window).stream_reader(data, read_across_frames=False)
        try:
            if declared is None:
                out = _read_at_most(reader, max_output_bytes, _CHUNK_BYTES)
            else:  # in one read: zstd decodes straight into the result
                out = _read_at_most(reader, declared, declared + 1)
        except zstandard.ZstdError as exc:
            raise CodecError(f"malformed zstd body: {exc}") from exc
        if declared is None:
            if len(out) > max_output_bytes:
                raise DecodeLimitExceeded(self.name, max_output_bytes)
        elif len(out) != declared:  # zstd checks this too, at the frame's end
            raise CodecError(
                f"malformed zstd body: its header declares {declared} bytes, "
                f"it decodes to {'more' if len(out) > declared else len(out)}"
            )
        return out

    def _decompressor(self, window_bytes: int) -> zstandard.ZstdDecompressor:
        cached: tuple[int, zstandard.ZstdDecompressor] | None = getattr(
            self._local, "decompressor", None
        )
        if cached is None or cached[0] != window_bytes:
            cached = (window_bytes, zstandard.ZstdDecompressor(max_window_size=window_bytes))
            self._local.decompressor = cached
        return cached[1]


def _read_at_most(reader: zstandard.ZstdDecompressionReader, limit: int, chunk_bytes: int) -> bytes:
    """The reader's output, or its first ``limit + 1`` bytes when it has more,
    read ``chunk_bytes`` at a time."""
    chunks: list[bytes] = []
    wanted = limit + 1
    while wanted:
        chunk = reader.read(min(wanted, chunk_bytes))
        if not chunk:
            break
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)  # one chunk, the usual case, is returned as it is
