"""The serializer conformance suite.

A serializer plugin subclasses :class:`SerializerSuite` in its own tests and
provides a ``serializer`` fixture::

    class TestMsgpackSerializer(SerializerSuite):
        extra_roundtrip_values = (RoundTrip("bytes", b"\\x00\\xff"),)

        @pytest.fixture
        def serializer(self) -> Serializer:
            return MsgpackSerializer()

Every serializer round-trips plain JSON-like data with exact types. What else it
round-trips (dates, bytes, sets, ...) it lists in ``extra_roundtrip_values``;
:data:`JSON_TAGGED_ROUNDTRIPS` is the built-in JSON serializer's table.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from petiole.errors import SerializationError
from petiole.serializers import Serializer

_SAME: Any = object()


@dataclass(frozen=True)
class RoundTrip:
    """A value that must survive ``loads(dumps(value))``, coming back as ``expected``
    (the value itself unless given), with the same types all the way down."""

    name: str
    value: Any
    expected: Any = field(default=_SAME)

    @property
    def result(self) -> Any:
        return self.value if self.expected is _SAME else self.expected


PLAIN_ROUNDTRIPS: tuple[RoundTrip, ...] = (
    RoundTrip("none", None),
    RoundTrip("true", True),
    RoundTrip("false", False),
    RoundTrip("zero", 0),
    RoundTrip("int64-bounds", [2**63 - 1, -(2**63), 2**64 - 1]),
    RoundTrip("floats", [0.1, -2.5, 1 / 3, 1e308, 5e-324, 0.0]),
    RoundTrip("empty-string", ""),
    RoundTrip("unicode", 'héllo wörld ✓ 中文 🌿 \u2028 \x00 tab\t newline\n quote" back\\'),
    RoundTrip("empty-containers", {"list": [], "dict": {}}),
    RoundTrip(
        "nested",
        {
            "args": [1, "two", [3.0, [None, True, {"deep": ["ü", {"deeper": []}]}]]],
            "kwargs": {"x": {"y": {"z": [False, -7, "π"]}}},
            "ключ": "значение",
            "": "empty key",
        },
    ),
    RoundTrip("top-level-list", [{"a": 1}, {"b": [2]}, []]),
)

JSON_TAGGED_ROUNDTRIPS: tuple[RoundTrip, ...] = (
    RoundTrip("datetime-naive", dt.datetime(2024, 2, 29, 23, 59, 58, 123456)),
    RoundTrip("datetime-utc", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)),
    RoundTrip(
        "datetime-offset",
        dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    ),
    RoundTrip("date", dt.date(1999, 12, 31)),
    RoundTrip("time", dt.time(13, 14, 15, 161718)),
    RoundTrip("timedelta", dt.timedelta(days=2, seconds=3, microseconds=4)),
    RoundTrip("timedelta-negative", dt.timedelta(seconds=-90)),
    RoundTrip("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    RoundTrip("decimal-exact", Decimal("1.10")),
    RoundTrip("decimal-large", Decimal("-12345678901234567890.000000000001")),
    RoundTrip("bytes-every-value", bytes(range(256))),
    RoundTrip("bytearray-as-bytes", bytearray(b"\x00\x01\xff"), expected=b"\x00\x01\xff"),
    RoundTrip("set", {1, 2, 3}),
    RoundTrip("frozenset", frozenset({"a", "b"})),
    RoundTrip("tuple-as-list", (1, "a", None), expected=[1, "a", None]),
    RoundTrip(
        "tagged-inside-containers",
        {"when": [dt.date(2020, 1, 1), {"id": uuid.UUID(int=1)}], "raw": b"\x00"},
    ),
    RoundTrip("big-int", 10**40),
)


class _Opaque:
    """An arbitrary object no data serializer may encode silently."""


def assert_same(got: Any, expected: Any, path: str = "value") -> None:
    """Equal, and of the same type at every level (so ``True`` never passes for ``1``)."""
    assert type(got) is type(expected), (
        f"{path}: got {type(got).__name__} {got!r}, expected {type(expected).__name__}"
    )
    if isinstance(expected, Mapping):
        assert set(got) == set(expected), f"{path}: keys {set(got)} != {set(expected)}"
        for key, item in expected.items():
            assert_same(got[key], item, f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), f"{path}: length {len(got)} != {len(expected)}"
        for index, (got_item, item) in enumerate(zip(got, expected, strict=True)):
            assert_same(got_item, item, f"{path}[{index}]")
    elif isinstance(expected, Decimal):
        assert str(got) == str(expected), f"{path}: {got!r} != {expected!r}"
    elif isinstance(expected, dt.datetime):
        assert (got, got.utcoffset()) == (expected, expected.utcoffset()), f"{path}: {got!r}"
    else:
        assert got == expected, f"{path}: {got!r} != {expected!r}"


class SerializerSuite:
    """Conformance tests for a :class:`~petiole.serializers.Serializer`.

    Subclasses provide a ``serializer`` fixture and may override these attributes.
    """

    #: Values beyond plain JSON-like data that this serializer round-trips.
    extra_roundtrip_values: ClassVar[Sequence[RoundTrip]] = ()
    #: Bytes that are not a document in this format.
    malformed_inputs: ClassVar[Sequence[bytes]] = (
        b'\x80\xff\xfe\x00{["\x9c\x01 not a document',
        b"\xc1\xc1\xc1\xc1",
    )
    #: Whether a document cut short is detected. False for formats where a prefix
    #: of a document can itself be a document (YAML).
    detects_truncation: ClassVar[bool] = True
    #: Whether arbitrary objects are refused (data formats) rather than encoded (pickle).
    rejects_arbitrary_objects: ClassVar[bool] = True

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        # Parametrize from the subclass's attributes, so each value is its own test.
        if "plain_case" in metafunc.fixturenames:
            metafunc.parametrize(
                "plain_case", PLAIN_ROUNDTRIPS, ids=[c.name for c in PLAIN_ROUNDTRIPS]
            )
        if "extra_case" in metafunc.fixturenames:
            extras: list[Any] = list(self.extra_roundtrip_values)
            if not extras:
                reason = (
                    "suite attribute extra_roundtrip_values is empty: "
                    "the serializer declares no types beyond plain data"
                )
                extras = [pytest.param(None, marks=pytest.mark.skip(reason=reason))]
            ids = [c.name if isinstance(c, RoundTrip) else "none-declared" for c in extras]
            metafunc.parametrize("extra_case", extras, ids=ids)
        if "malformed" in metafunc.fixturenames:
            inputs = list(self.malformed_inputs)
            metafunc.parametrize("malformed", inputs, ids=[f"input{i}" for i in range(len(inputs))])

    # -- the contract ----------------------------------------------------------

    def test_serializer_satisfies_protocol(self, serializer: Serializer) -> None:
        assert isinstance(serializer, Serializer)
        assert isinstance(serializer.name, str)
        assert serializer.name
        assert isinstance(serializer.content_type, str)
        assert "/" in serializer.content_type

    def test_dumps_returns_bytes(self, serializer: Serializer) -> None:
        assert type(serializer.dumps({"a": [1, 2]})) is bytes

    def test_plain_data_round_trips_with_exact_types(
        self, serializer: Serializer, plain_case: RoundTrip
    ) -> None:
        assert_same(serializer.loads(serializer.dumps(plain_case.value)), plain_case.result)

    def test_declared_extra_values_round_trip(
        self, serializer: Serializer, extra_case: RoundTrip
    ) -> None:
        assert_same(serializer.loads(serializer.dumps(extra_case.value)), extra_case.result)

    def test_malformed_bytes_raise_serialization_error(
        self, serializer: Serializer, malformed: bytes
    ) -> None:
        with pytest.raises(SerializationError):
            serializer.loads(malformed)

    def test_truncated_document_raises_serialization_error(self, serializer: Serializer) -> None:
        if not self.detects_truncation:
            pytest.skip("suite flag detects_truncation is False: a prefix may be a valid document")
        data = serializer.dumps({"key": "value" * 20, "numbers": list(range(50))})

        with pytest.raises(SerializationError):
            serializer.loads(data[: len(data) // 2])

    @pytest.mark.parametrize("nested", [False, True], ids=["top-level", "nested"])
    def test_arbitrary_object_raises_serialization_error_naming_its_type(
        self, serializer: Serializer, nested: bool
    ) -> None:
        if not self.rejects_arbitrary_objects:
            pytest.skip("suite flag rejects_arbitrary_objects is False: it encodes any object")
        value: Any = {"args": [1, _Opaque()]} if nested else _Opaque()

        with pytest.raises(SerializationError, match="_Opaque"):
            serializer.dumps(value)

    def test_value_nested_too_deeply_raises_serialization_error(
        self, serializer: Serializer
    ) -> None:
        value: list[Any] = []
        for _ in range(100_000):
            value = [value]

        with pytest.raises(SerializationError):
            serializer.dumps(value)

    def test_unencodable_value_raises_serialization_error(self, serializer: Serializer) -> None:
        with pytest.raises(SerializationError):
            serializer.dumps({"lock": threading.Lock()})
