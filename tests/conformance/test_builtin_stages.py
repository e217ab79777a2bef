"""The core's built-in codecs and signer against the codec and signer conformance suites."""

from __future__ import annotations

import pytest

from petiole.stages import Codec, HmacSha256Signer, IdentityCodec, Signer, ZlibCodec
from petiole.testing import CodecSuite, SignerSuite


class TestIdentityCodec(CodecSuite):
    detects_corruption = False

    @pytest.fixture
    def codec(self) -> Codec:
        return IdentityCodec()


class TestZlibCodec(CodecSuite):
    @pytest.fixture
    def codec(self) -> Codec:
        return ZlibCodec()


class TestZlibCodecFastest(CodecSuite):
    @pytest.fixture
    def codec(self) -> Codec:
        return ZlibCodec(level=1)


class TestHmacSha256Signer(SignerSuite):
    @pytest.fixture
    def signer(self) -> Signer:
        return HmacSha256Signer(b"k" * 32)

    @pytest.fixture
    def other_signer(self) -> Signer:
        return HmacSha256Signer(b"K" * 32)
