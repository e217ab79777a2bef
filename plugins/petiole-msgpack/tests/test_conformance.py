"""The serializer conformance suite, with everything the core's JSON serializer
round-trips, and what msgpack adds to it."""

from __future__ import annotations

import collections
import datetime as dt
import enum
import uuid
from decimal import Decimal

from petiole_msgpack.serializer import MsgpackSerializer

from petiole.plugin_api import JSON_TAGGED_ROUNDTRIPS, RoundTrip, SerializerSuite


class _Level(enum.IntEnum):
    HIGH = 2


MSGPACK_ROUNDTRIPS = (
    RoundTrip("int-keys-stay-ints", {1: "a", -2: "b", 2**64 - 1: "c"}),
    RoundTrip("scalar-keys-keep-their-types", {b"raw": 1, 1.5: 2, None: 3, True: 4}),
    RoundTrip("tuple-keys-come-back-as-tuples", {(1, ("a", None)): "x"}),
    RoundTrip("uuid-and-date-keys", {uuid.UUID(int=7): 1, dt.date(2020, 1, 1): 2}),
    RoundTrip("tuples-in-a-set-stay-tuples", {(1, 2), (3, 4)}),
    RoundTrip("nested-frozensets", frozenset({frozenset({frozenset({1})}), 2})),
    RoundTrip("set-of-mixed-types", {1, "a", None, b"x", uuid.UUID(int=1), Decimal("2.5")}),
    RoundTrip("empty-set", set()),
    RoundTrip("datetime-min-max", [dt.datetime.min, dt.datetime.max]),
    RoundTrip(
        "datetime-aware-at-the-ends-of-time",
        [
            dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=23, minutes=59))),
            dt.datetime.max.replace(tzinfo=dt.timezone(-dt.timedelta(hours=23, minutes=59))),
        ],
    ),
    RoundTrip(
        "datetime-offset-with-seconds-and-microseconds",
        dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(seconds=-3601, microseconds=7))),
    ),
    RoundTrip("datetime-before-1970", dt.datetime(1969, 12, 31, 23, 59, 59, 999999)),
    RoundTrip("date-min-max", [dt.date.min, dt.date.max]),
    RoundTrip("time-aware", dt.time(23, 59, 59, 999999, tzinfo=dt.timezone.utc)),
    RoundTrip("time-min-max", [dt.time.min, dt.time.max]),
    RoundTrip("timedelta-min-max", [dt.timedelta.min, dt.timedelta.max]),
    RoundTrip("timedelta-under-a-second-negative", dt.timedelta(microseconds=-1)),
    RoundTrip(
        "decimal-specials", [Decimal("NaN"), Decimal("-Infinity"), Decimal("-0"), Decimal("1E+999")]
    ),
    RoundTrip("int-just-past-64-bits", [2**64, -(2**63) - 1, -(2**200), 2**1000]),
    RoundTrip("memoryview-as-bytes", memoryview(b"\x01\x02"), expected=b"\x01\x02"),
    RoundTrip("int-enum-as-int", _Level.HIGH, expected=2),
    RoundTrip("ordered-dict-as-dict", collections.OrderedDict(a=1), expected={"a": 1}),
    RoundTrip("nan-and-infinities", [float("inf"), float("-inf")]),
)


class TestMsgpackSerializer(SerializerSuite):
    extra_roundtrip_values = (*JSON_TAGGED_ROUNDTRIPS, *MSGPACK_ROUNDTRIPS)
    # The suite's ``serializer`` fixture is conftest.py's: msgpack's C extension, then
    # its pure-Python fallback.


def test_the_serializer_uses_celerys_name_and_content_type() -> None:
    assert (MsgpackSerializer.name, MsgpackSerializer.content_type) == (
        "msgpack",
        "application/x-msgpack",
    )
