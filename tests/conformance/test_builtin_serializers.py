"""The core's built-in serializers against the serializer conformance suite."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from petiole.serializers import JsonSerializer, PickleSerializer, Serializer
from petiole.testing import JSON_TAGGED_ROUNDTRIPS, RoundTrip, SerializerSuite


class _Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))


class TestJsonSerializer(SerializerSuite):
    extra_roundtrip_values = JSON_TAGGED_ROUNDTRIPS
    malformed_inputs = (
        *SerializerSuite.malformed_inputs,
        # Valid JSON whose tagged values do not decode: each raised its own
        # exception type (and killed a pool thread) before.
        b'{"__petiole__": "decimal", "v": "abc"}',
        b'{"__petiole__": "bytes", "v": 5}',
        b'{"__petiole__": "bytes", "v": "not base64!"}',
        b'{"__petiole__": "timedelta", "v": 1e400}',
        b'{"__petiole__": "datetime", "v": null}',
        b'{"__petiole__": "uuid", "v": "nope"}',
        b'{"__petiole__": "set", "v": [[1]]}',
        b"[" * 100_000 + b"]" * 100_000,
    )

    @pytest.fixture
    def serializer(self) -> Serializer:
        return JsonSerializer()


class TestPickleSerializer(SerializerSuite):
    rejects_arbitrary_objects = False
    extra_roundtrip_values = (
        RoundTrip("datetime", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)),
        RoundTrip("timedelta", dt.timedelta(days=2, microseconds=4)),
        RoundTrip("uuid", uuid.UUID(int=7)),
        RoundTrip("decimal-exact", Decimal("1.10")),
        RoundTrip("bytes-every-value", bytes(range(256))),
        RoundTrip("set", {1, 2, 3}),
        RoundTrip("tuple-stays-tuple", (1, "a", None)),
        RoundTrip("object", _Point(1, 2)),
    )

    @pytest.fixture
    def serializer(self) -> Serializer:
        return PickleSerializer()
