"""The codec conformance suite.

A codec plugin subclasses :class:`CodecSuite` in its own tests and provides a
``codec`` fixture::

    class TestZstdCodec(CodecSuite):
        @pytest.fixture
        def codec(self) -> Codec:
            return ZstdCodec()

Every codec round-trips any bytes, and refuses input that would decode past
``max_output_bytes`` while decoding, having allocated about that much at most
(measured with :mod:`tracemalloc`, which sees allocations made through Python's
allocators: a codec whose C library allocates with plain ``malloc`` is measured
only on its Python side). A codec that detects corruption (every compressor
does, ``identity`` cannot) raises :class:`~petiole.stages.CodecError` on
truncated or garbage input.
"""

from __future__ import annotations

import os
import tracemalloc
from typing import ClassVar

import pytest

from petiole.errors import CodecError, DecodeLimitExceeded
from petiole.stages import Codec

MIB = 1 << 20


class CodecSuite:
    """Subclass with a ``codec`` fixture; tune the class attributes to the codec."""

    # False for a codec that cannot tell corrupt input from valid (identity).
    detects_corruption: ClassVar[bool] = True
    # The bomb: this many zero bytes, encoded, decoded under ``bomb_limit_bytes``.
    bomb_plain_bytes: ClassVar[int] = 64 * MIB
    bomb_limit_bytes: ClassVar[int] = 1 * MIB
    # Decoding the bomb may allocate at most this many times its limit, peak.
    bomb_allocation_factor: ClassVar[float] = 3.0
    garbage_inputs: ClassVar[tuple[bytes, ...]] = (
        b"this was never encoded",
        b"\xff" * 64,
        b"\x00",
    )

    def _decode(self, codec: Codec, data: bytes, limit: int = 16 * MIB) -> bytes:
        return codec.decode(data, max_output_bytes=limit)

    def test_codec_has_a_name_for_content_encoding(self, codec: Codec) -> None:
        assert isinstance(codec, Codec)
        assert isinstance(codec.name, str)
        assert codec.name
        assert codec.name == codec.name.strip().lower(), "encoding names are lower case"

    def test_round_trips_text(self, codec: Codec) -> None:
        data = b'[["hello", 1, 2.5], {"k": "v"}]' * 100
        assert self._decode(codec, codec.encode(data)) == data

    def test_round_trips_empty_input(self, codec: Codec) -> None:
        assert self._decode(codec, codec.encode(b"")) == b""

    def test_round_trips_every_byte_value(self, codec: Codec) -> None:
        data = bytes(range(256)) * 16
        assert self._decode(codec, codec.encode(data)) == data

    def test_round_trips_incompressible_input(self, codec: Codec) -> None:
        data = os.urandom(256 * 1024)
        assert self._decode(codec, codec.encode(data)) == data

    def test_round_trips_a_large_body(self, codec: Codec) -> None:
        data = (b"petiole " * 1024 + os.urandom(1024)) * 512  # about 4.5 MiB
        assert self._decode(codec, codec.encode(data), limit=len(data)) == data

    def test_output_exactly_at_the_limit_is_allowed(self, codec: Codec) -> None:
        data = b"x" * 100_000
        assert self._decode(codec, codec.encode(data), limit=len(data)) == data

    def test_output_one_byte_over_the_limit_is_refused(self, codec: Codec) -> None:
        data = b"x" * 100_000
        with pytest.raises(DecodeLimitExceeded):
            self._decode(codec, codec.encode(data), limit=len(data) - 1)

    def test_decode_limit_error_is_a_codec_error(self, codec: Codec) -> None:
        with pytest.raises(CodecError):
            self._decode(codec, codec.encode(b"y" * 10_000), limit=10)

    def test_truncated_input_raises_codec_error(self, codec: Codec) -> None:
        if not self.detects_corruption:
            pytest.skip(f"{codec.name} cannot detect corruption")
        encoded = codec.encode(b"a body that is long enough to be cut short " * 50)
        for cut in (1, len(encoded) // 2, len(encoded) - 1):
            with pytest.raises(CodecError):
                self._decode(codec, encoded[:cut])

    def test_garbage_input_raises_codec_error(self, codec: Codec) -> None:
        if not self.detects_corruption:
            pytest.skip(f"{codec.name} cannot detect corruption")
        for garbage in self.garbage_inputs:
            with pytest.raises(CodecError):
                self._decode(codec, garbage)

    def test_a_bomb_is_refused_without_allocating_past_the_limit(self, codec: Codec) -> None:
        bomb = codec.encode(bytes(self.bomb_plain_bytes))
        limit = self.bomb_limit_bytes
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            with pytest.raises(DecodeLimitExceeded):
                codec.decode(bomb, max_output_bytes=limit)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak <= limit * self.bomb_allocation_factor, (
            f"decoding a {len(bomb)}-byte bomb under a {limit}-byte limit allocated "
            f"{peak} bytes at its peak"
        )
