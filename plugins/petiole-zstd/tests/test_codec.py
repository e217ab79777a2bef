"""The zstd codec: the codec conformance suite, then what it refuses beyond it —
bombs (with an honest header, without one, with one that lies), truncated and
garbage frames, and anything after the one frame a Petiole producer writes."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import zstandard
from petiole_zstd.codec import ZstdCodec, max_window_bytes

from petiole.plugin_api import Codec, CodecError, CodecSuite, ConfigError, DecodeLimitExceeded

KIB = 1 << 10
MIB = 1 << 20
BODY = b'[["an order", {"items": [1, 2, 3], "paid": true}], {}]' * 200


class TestZstdCodec(CodecSuite):
    @pytest.fixture
    def codec(self) -> Codec:
        return ZstdCodec()


class TestZstdCodecStrongest(CodecSuite):
    # Level 19 on the suite's 64 MiB bomb takes a second; 16 MiB is 16 times its limit.
    bomb_plain_bytes = 16 * MIB

    @pytest.fixture
    def codec(self) -> Codec:
        return ZstdCodec(level=19)


# -- helpers: frames other producers could make ------------------------------------------


def _without_size(data: bytes) -> bytes:
    """One frame without a declared size; its window still fits the data."""
    return zstandard.ZstdCompressor(write_content_size=False).compress(data)


def _streamed(data: bytes, level: int) -> bytes:
    """One frame as a streaming compressor writes it: no size, the level's whole window."""
    compressor = zstandard.ZstdCompressor(level=level).compressobj()
    return compressor.compress(data) + compressor.flush()


def _with_header_field(frame: bytes, flag: int, field: bytes) -> bytes:
    """``frame`` (made without a declared size or a dictionary) with ``flag`` set in
    its header descriptor and ``field`` put after its window descriptor."""
    descriptor = frame[4]
    assert descriptor & 0xE3 == 0, "no size, not single-segment, no dictionary"
    return frame[:4] + bytes([descriptor | flag]) + frame[5:6] + field + frame[6:]


def _claiming(frame: bytes, size: int) -> bytes:
    """``frame`` with a header declaring ``size`` (in 4 bytes: size flag 2)."""
    return _with_header_field(frame, 0x80, size.to_bytes(4, "little"))


def _peak_while(decode: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        decode()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- bombs ---------------------------------------------------------------------------------


def test_a_1_kib_bomb_declaring_its_size_is_refused_from_its_header() -> None:
    codec = ZstdCodec()
    bomb = codec.encode(bytes(32 * MIB))
    assert len(bomb) <= 1100

    def decode() -> None:
        with pytest.raises(
            DecodeLimitExceeded, match=r"more than 1048576 bytes \(max_body_bytes\)"
        ):
            codec.decode(bomb, max_output_bytes=MIB)

    assert _peak_while(decode) < 64 * KIB, "nothing is decoded"


def test_a_1_kib_bomb_declaring_no_size_is_refused_having_decoded_about_the_limit() -> None:
    bomb = _streamed(bytes(32 * MIB), level=3)
    assert len(bomb) <= 1100
    limit = 4 * MIB  # at least its 2 MiB window, so it is decoded until the output bound

    def decode() -> None:
        with pytest.raises(DecodeLimitExceeded, match=f"more than {limit} bytes"):
            ZstdCodec().decode(bomb, max_output_bytes=limit)

    peak = _peak_while(decode)
    assert peak <= 3 * limit < 32 * MIB, f"allocated {peak} bytes"


def test_a_1_kib_bomb_whose_header_declares_100_bytes_is_refused_at_101() -> None:
    bomb = _claiming(_streamed(bytes(32 * MIB), level=3), 100)
    assert zstandard.get_frame_parameters(bomb).content_size == 100

    def decode() -> None:
        with pytest.raises(CodecError, match="malformed zstd body"):
            ZstdCodec().decode(bomb, max_output_bytes=4 * MIB)

    assert _peak_while(decode) < 64 * KIB


def test_a_header_declaring_more_than_the_limit_is_refused_before_decoding() -> None:
    small = _claiming(_without_size(BODY), 1 << 30)

    def decode() -> None:
        with pytest.raises(DecodeLimitExceeded):
            ZstdCodec().decode(small, max_output_bytes=64 * MIB)

    assert _peak_while(decode) < 64 * KIB


def test_a_header_declaring_more_than_the_frame_holds_is_refused() -> None:
    lying = _claiming(_without_size(BODY), 2 * len(BODY))
    with pytest.raises(CodecError, match="malformed zstd body"):
        ZstdCodec().decode(lying, max_output_bytes=MIB)


def test_a_window_larger_than_the_limit_is_refused_before_it_is_allocated() -> None:
    streamed = _streamed(BODY, level=19)  # an 8 MiB window, for a 10 KiB body
    assert zstandard.get_frame_parameters(streamed).window_size == 8 * MIB
    assert ZstdCodec().decode(streamed, max_output_bytes=8 * MIB) == BODY
    with pytest.raises(DecodeLimitExceeded):
        ZstdCodec().decode(streamed, max_output_bytes=8 * MIB - 1)


@pytest.mark.parametrize(
    ("limit", "window"), [(0, KIB), (10, KIB), (64 * MIB, 64 * MIB), (1 << 40, 1 << 31)]
)
def test_the_window_bound_is_the_limit_within_what_zstd_accepts(limit: int, window: int) -> None:
    assert max_window_bytes(limit) == window


# -- strict decoding: one whole frame ------------------------------------------------------


def _checked_frame() -> bytes:
    frame = ZstdCodec().encode(BODY + bytes(range(256)) * 1024)  # several blocks, a checksum
    assert zstandard.get_frame_parameters(frame).has_checksum
    return frame


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (0, "it is empty"),
        (3, "the frame header is cut short"),
        (5, "the frame header is cut short"),
        (10, "the frame ends before its last block"),  # its header is 9 bytes
        (-6, "a block is cut short"),
        (-2, "the frame's checksum is cut short"),
    ],
)
def test_a_truncated_frame_is_refused_saying_where_it_was_cut(cut: int, reason: str) -> None:
    frame = _checked_frame()
    with pytest.raises(CodecError, match=f"truncated zstd body: {reason}"):
        ZstdCodec().decode(frame[:cut], max_output_bytes=MIB)


@pytest.mark.parametrize(
    ("extra", "what"),
    [
        (ZstdCodec().encode(b"second"), "a second zstd frame"),
        (b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"skip", "a skippable frame"),
        (b"\x00\x00\x00\x00", "not a zstd frame"),
        (b"(", "not a zstd frame"),
    ],
)
def test_anything_after_the_frame_is_refused(extra: bytes, what: str) -> None:
    with pytest.raises(
        CodecError, match=rf"{len(extra)} bytes after its frame \({what}\); a Petiole producer"
    ):
        ZstdCodec().decode(ZstdCodec().encode(BODY) + extra, max_output_bytes=MIB)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"skip", "starts with a skippable"),
        (b"\x28\xb5\x2f\xfe" + bytes(16), "does not start with zstd's magic number"),
        (b"this was never encoded", "does not start with zstd's magic number"),
    ],
)
def test_what_is_not_a_zstd_frame_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(CodecError, match=f"malformed zstd body: it {reason}"):
        ZstdCodec().decode(data, max_output_bytes=MIB)


def test_a_header_with_its_reserved_bit_set_is_refused() -> None:
    frame = bytearray(ZstdCodec().encode(BODY))
    frame[4] |= 0x08  # the frame header descriptor's reserved bit
    with pytest.raises(CodecError, match="malformed zstd body: "):
        ZstdCodec().decode(bytes(frame), max_output_bytes=MIB)


def test_a_block_of_the_reserved_type_is_refused() -> None:
    frame = bytearray(_without_size(BODY))
    frame[6] |= 0b110  # the first block header's type bits, after magic and two header bytes
    with pytest.raises(CodecError, match="a block of reserved type at byte 6"):
        ZstdCodec().decode(bytes(frame), max_output_bytes=MIB)


def test_a_corrupted_byte_fails_the_checksum() -> None:
    frame = bytearray(ZstdCodec().encode(bytes(range(256)) * 40))
    frame[-10] ^= 0x01
    with pytest.raises(CodecError, match="malformed zstd body"):
        ZstdCodec().decode(bytes(frame), max_output_bytes=MIB)


def test_a_frame_needing_a_dictionary_is_refused() -> None:
    frame = _with_header_field(_without_size(BODY), 0x01, bytes([7]))  # a 1-byte dictionary id
    with pytest.raises(CodecError, match="dictionary 7; the zstd codec decodes frames made"):
        ZstdCodec().decode(frame, max_output_bytes=MIB)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d: zstandard.ZstdCompressor().compress(d), id="no-checksum"),
        pytest.param(_without_size, id="no-size"),
        pytest.param(lambda d: _streamed(d, level=3), id="streamed"),
        pytest.param(lambda d: zstandard.ZstdCompressor(level=-5).compress(d), id="fast-level"),
    ],
)
def test_frames_of_other_producers_decode(make: Callable[[bytes], bytes]) -> None:
    # Under the default max_body_bytes: a streamed frame's window is 2 MiB at level 3.
    assert ZstdCodec().decode(make(BODY), max_output_bytes=64 * MIB) == BODY


# -- the codec object ----------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 23])
def test_a_level_out_of_range_is_a_config_error(level: int) -> None:
    with pytest.raises(ConfigError, match=f"zstd compression level must be 1 to 22, got {level}"):
        ZstdCodec(level)


def test_frames_declare_their_size_and_carry_a_checksum() -> None:
    params = zstandard.get_frame_parameters(ZstdCodec().encode(BODY))
    assert (params.content_size, params.has_checksum) == (len(BODY), True)


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        yield pool


def test_one_codec_is_shared_by_threads_encoding_and_decoding_at_once(
    threads: ThreadPoolExecutor,
) -> None:
    codec = ZstdCodec()  # as an app holds it: one instance for every thread

    def round_trip(i: int) -> bool:
        data = BODY + str(i).encode() * (i % 97)
        limit = len(data) + i % 3  # decoders for different limits, too
        return codec.decode(codec.encode(data), max_output_bytes=limit) == data

    assert all(threads.map(round_trip, range(400)))
