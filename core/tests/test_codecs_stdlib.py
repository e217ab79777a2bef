"""The standard library's codecs: bzip2 and lzma against the codec conformance
suite, what each refuses beyond it, and a bomb of about 1 KiB or less for every
one of them (zlib too) refused without being inflated in full."""

from __future__ import annotations

import bz2
import lzma
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from petiole import Petiole
from petiole.errors import CodecError, ConfigError, DecodeLimitExceeded
from petiole.stages import (
    Bzip2Codec,
    Codec,
    LzmaCodec,
    ZlibCodec,
    lzma2_dict_bytes,
    lzma_decoder_memlimit,
)
from petiole.testing import CodecSuite
from petiole.testing.in_thread import start_worker

KIB = 1 << 10
MIB = 1 << 20
BODY = b'[["an order", {"items": [1, 2, 3], "paid": true}], {}]' * 200


class TestBzip2Codec(CodecSuite):
    @pytest.fixture
    def codec(self) -> Codec:
        return Bzip2Codec()


class TestLzmaCodec(CodecSuite):
    # Encoding 64 MiB takes liblzma seconds; 16 MiB is still 16 times the bomb's limit.
    bomb_plain_bytes = 16 * MIB

    @pytest.fixture
    def codec(self) -> Codec:
        return LzmaCodec()


class TestLzmaCodecFastest(CodecSuite):
    bomb_plain_bytes = 16 * MIB

    @pytest.fixture
    def codec(self) -> Codec:
        return LzmaCodec(level=0)


# -- registered beside zlib ------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [("bzip2", Bzip2Codec), ("lzma", LzmaCodec)])
def test_the_core_registers_the_codec_by_its_wire_name(
    app: Petiole, name: str, kind: type[Any]
) -> None:
    assert name in app.plugins.provided("codec")
    codec = app.codec(name)
    assert isinstance(codec, kind)
    assert codec.name == name


@pytest.mark.parametrize("name", ["bzip2", "lzma"])
def test_a_worker_runs_tasks_whose_bodies_the_codec_compressed(app: Petiole, name: str) -> None:
    app.configure(compression=name, compression_min_bytes=0)

    @app.task(name="stdlib.length")
    def length(text: str) -> int:
        return len(text)

    with start_worker(app):
        assert length.delay("y" * 5000).get(timeout=10) == 5000


# -- levels ------------------------------------------------------------------------------


@pytest.mark.parametrize("level", range(1, 10))
def test_every_bzip2_level_round_trips(level: int) -> None:
    codec = Bzip2Codec(level)
    assert codec.decode(codec.encode(BODY), max_output_bytes=len(BODY)) == BODY


@pytest.mark.parametrize("level", range(10))
def test_every_lzma_preset_round_trips_within_a_limit_of_the_body_size(level: int) -> None:
    # The dictionary is sized to the body, so the tightest limit still decodes.
    codec = LzmaCodec(level)
    assert codec.decode(codec.encode(BODY), max_output_bytes=len(BODY)) == BODY


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Bzip2Codec(0), "bzip2 compression level must be 1 to 9, got 0"),
        (lambda: Bzip2Codec(10), "bzip2 compression level must be 1 to 9, got 10"),
        (lambda: LzmaCodec(-1), r"lzma compression level \(xz preset\) must be 0 to 9, got -1"),
        (lambda: LzmaCodec(10), r"lzma compression level \(xz preset\) must be 0 to 9, got 10"),
    ],
)
def test_a_level_out_of_range_is_a_config_error(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


# -- strict decoding: one whole stream, nothing after it -------------------------------

STREAMS: list[tuple[str, Codec, Callable[[bytes], bytes]]] = [
    ("zlib", ZlibCodec(), zlib.compress),
    ("bzip2", Bzip2Codec(), bz2.compress),
    ("lzma", LzmaCodec(), lzma.compress),
]
IDS = [name for name, _, _ in STREAMS]


@pytest.mark.parametrize(("name", "codec", "_"), STREAMS, ids=IDS)
def test_empty_input_is_a_truncated_stream(name: str, codec: Codec, _: object) -> None:
    with pytest.raises(CodecError, match=f"truncated {name} body: the stream does not end"):
        codec.decode(b"", max_output_bytes=MIB)


@pytest.mark.parametrize(("name", "codec", "_"), STREAMS, ids=IDS)
def test_a_cut_stream_is_refused_as_truncated(name: str, codec: Codec, _: object) -> None:
    encoded = codec.encode(BODY)
    with pytest.raises(CodecError, match=f"truncated {name} body"):
        codec.decode(encoded[:-1], max_output_bytes=MIB)


@pytest.mark.parametrize(("name", "codec", "_"), STREAMS, ids=IDS)
def test_garbage_after_the_stream_is_refused(name: str, codec: Codec, _: object) -> None:
    encoded = codec.encode(BODY) + b"trailing"
    with pytest.raises(
        CodecError, match=rf"malformed {name} body: 8 bytes after its end \(not part of it\)"
    ):
        codec.decode(encoded, max_output_bytes=MIB)


@pytest.mark.parametrize(("name", "codec", "compress"), STREAMS[1:], ids=IDS[1:])
def test_a_second_stream_is_refused_though_each_is_valid(
    name: str, codec: Codec, compress: Callable[[bytes], bytes]
) -> None:
    # bz2.decompress and lzma.decompress would join them; no Petiole producer writes two.
    second = compress(b"more")
    with pytest.raises(
        CodecError,
        match=rf"malformed {name} body: {len(second)} bytes after its end \(a second stream\)",
    ):
        codec.decode(codec.encode(BODY) + second, max_output_bytes=MIB)


def test_xz_stream_padding_is_refused_since_a_petiole_producer_writes_none() -> None:
    with pytest.raises(CodecError, match="4 bytes after its end"):
        LzmaCodec().decode(LzmaCodec().encode(BODY) + bytes(4), max_output_bytes=MIB)


@pytest.mark.parametrize(("name", "codec", "_"), STREAMS, ids=IDS)
def test_a_corrupted_byte_is_refused(name: str, codec: Codec, _: object) -> None:
    encoded = bytearray(codec.encode(BODY))
    encoded[len(encoded) // 2] ^= 0xFF
    with pytest.raises(CodecError, match=f"{name} body"):
        codec.decode(bytes(encoded), max_output_bytes=MIB)


@pytest.mark.parametrize(
    "check", [lzma.CHECK_NONE, lzma.CHECK_CRC32, lzma.CHECK_CRC64, lzma.CHECK_SHA256]
)
def test_xz_streams_of_other_producers_decode_whatever_their_check(check: int) -> None:
    assert LzmaCodec().decode(lzma.compress(BODY, check=check), max_output_bytes=64 * MIB) == BODY


# -- lzma's dictionary: bounded by the limit ---------------------------------------------


@pytest.mark.parametrize(
    ("requested", "recorded"),
    [(0, 4096), (4096, 4096), (4097, 6144), (6144, 6144), (100_000, 131_072), (MIB, MIB)],
)
def test_the_dictionary_bound_is_the_size_an_xz_header_records(
    requested: int, recorded: int
) -> None:
    assert lzma2_dict_bytes(requested) == recorded


def test_a_producer_dictionary_larger_than_the_limit_needs_is_refused_as_over_it() -> None:
    # lzma.compress's preset 6 keeps its 8 MiB dictionary even for a small body.
    foreign = lzma.compress(BODY)
    assert LzmaCodec().decode(foreign, max_output_bytes=64 * MIB) == BODY
    with pytest.raises(DecodeLimitExceeded, match=r"more than 1048576 bytes \(max_body_bytes\)"):
        LzmaCodec().decode(foreign, max_output_bytes=MIB)


def _claiming_dictionary(stream: bytes, dict_byte: int) -> bytes:
    """``stream`` (one LZMA2 block) with its block header's dictionary size replaced:
    byte 40 is 4 GiB - 1, the largest an .xz header can ask for."""
    block = 12  # after the stream header
    header_bytes = (stream[block] + 1) * 4
    header = bytearray(stream[block : block + header_bytes])
    assert header[2:4] == b"\x21\x01", "one LZMA2 filter with one property byte"
    header[4] = dict_byte
    header[-4:] = zlib.crc32(header[:-4]).to_bytes(4, "little")
    return stream[:block] + bytes(header) + stream[block + header_bytes :]


def test_a_header_asking_for_a_4_gib_dictionary_is_refused_before_it_is_allocated() -> None:
    crafted = _claiming_dictionary(LzmaCodec().encode(BODY), 40)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(DecodeLimitExceeded):
            LzmaCodec().decode(crafted, max_output_bytes=64 * MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MIB, f"allocated {peak} bytes"  # liblzma allocates through Python's allocator


def test_the_memlimit_is_the_limit_as_a_dictionary_plus_the_decoders_state() -> None:
    assert lzma_decoder_memlimit(64 * MIB) == 64 * MIB + 128 * KIB
    assert lzma_decoder_memlimit(10) == 4096 + 128 * KIB


# -- a bomb of about 1 KiB or less, for every codec --------------------------------------


def _small_dictionary_xz(data: bytes) -> bytes:
    # A 64 KiB dictionary: decodable under a 1 MiB limit, so the output bound is what stops it.
    return lzma.compress(
        data, filters=[{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": 64 * KIB}]
    )


BOMBS = [
    # zlib's deflate cannot do better than about 1:1030, so its 1 KiB bomb inflates
    # to 1 MiB, and the limit it must beat is set at 128 KiB.
    pytest.param(ZlibCodec(9), ZlibCodec(9).encode, 1 * MIB, 128 * KIB, id="zlib"),
    pytest.param(Bzip2Codec(), Bzip2Codec().encode, 16 * MIB, 1 * MIB, id="bzip2"),
    pytest.param(LzmaCodec(), _small_dictionary_xz, 6 * MIB, 1 * MIB, id="lzma-output-bound"),
    # LzmaCodec's own encoding of 6 MiB asks for a 6 MiB dictionary: refused by the memlimit.
    pytest.param(LzmaCodec(), LzmaCodec().encode, 6 * MIB, 1 * MIB, id="lzma-memlimit"),
]


@pytest.mark.parametrize(("codec", "make", "plain_bytes", "limit"), BOMBS)
def test_a_bomb_of_a_kib_or_less_is_refused_without_being_inflated(
    codec: Codec, make: Callable[[bytes], bytes], plain_bytes: int, limit: int
) -> None:
    bomb = make(bytes(plain_bytes))
    assert len(bomb) <= 1100, f"{len(bomb)} bytes is no small bomb"
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(DecodeLimitExceeded, match=f"more than {limit} bytes"):
            codec.decode(bomb, max_output_bytes=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The output stops one byte past the limit: the peak is about the limit (the
    # decoder's output buffer, its state), far from the bomb's plain size.
    assert peak <= 3 * limit < plain_bytes, (
        f"a {len(bomb)}-byte bomb of {plain_bytes} bytes under a {limit}-byte limit "
        f"allocated {peak} bytes at its peak"
    )
