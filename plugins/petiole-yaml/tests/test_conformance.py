"""The serializer conformance suite, with everything the core's JSON serializer
round-trips, and what YAML adds to it."""

from __future__ import annotations

import collections
import datetime as dt
import enum
import uuid
from decimal import Decimal

from petiole_yaml.serializer import YamlSerializer

from petiole.plugin_api import JSON_TAGGED_ROUNDTRIPS, RoundTrip, SerializerSuite


class _Level(enum.IntEnum):
    HIGH = 2


class _Colour(str, enum.Enum):
    RED = "red"


YAML_ROUNDTRIPS = (
    RoundTrip("int-keys-stay-ints", {1: "a", -2: "b", 10**30: "c"}),
    RoundTrip("scalar-keys-keep-their-types", {b"raw": 1, 1.5: 2, None: 3, True: 4}),
    RoundTrip("tuple-keys-come-back-as-tuples", {(1, ("a", None)): "x"}),
    RoundTrip("uuid-and-date-keys", {uuid.UUID(int=7): 1, dt.date(2020, 1, 1): 2}),
    RoundTrip("tuples-in-a-set-stay-tuples", {(1, 2), (3, 4)}),
    RoundTrip("nested-frozensets", frozenset({frozenset({frozenset({1})}), 2})),
    RoundTrip("set-of-mixed-types", {1, "a", None, b"x", uuid.UUID(int=1), Decimal("2.5")}),
    RoundTrip("empty-set-and-frozenset", [set(), frozenset()]),
    RoundTrip("datetime-min-max", [dt.datetime.min, dt.datetime.max]),
    RoundTrip(
        "datetime-offset-with-seconds-and-microseconds",
        dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(seconds=-3601, microseconds=7))),
    ),
    RoundTrip(
        "datetime-negative-offset",
        dt.datetime(2024, 1, 2, tzinfo=dt.timezone(-dt.timedelta(hours=9, minutes=30))),
    ),
    RoundTrip("date-min-max", [dt.date.min, dt.date.max]),
    RoundTrip("time-aware", dt.time(23, 59, 59, 999999, tzinfo=dt.timezone.utc)),
    RoundTrip("time-min-max", [dt.time.min, dt.time.max]),
    RoundTrip("timedelta-min-max", [dt.timedelta.min, dt.timedelta.max]),
    RoundTrip("timedelta-under-a-second-negative", dt.timedelta(microseconds=-1)),
    RoundTrip(
        "decimal-specials", [Decimal("NaN"), Decimal("-Infinity"), Decimal("-0"), Decimal("1E+999")]
    ),
    RoundTrip("huge-ints", [2**64, -(2**63) - 1, -(2**200), 2**1000]),
    RoundTrip("memoryview-as-bytes", memoryview(b"\x01\x02"), expected=b"\x01\x02"),
    RoundTrip("int-enum-as-int", _Level.HIGH, expected=2),
    RoundTrip("str-enum-as-str", _Colour.RED, expected="red"),
    RoundTrip("ordered-dict-as-dict", collections.OrderedDict(a=1), expected={"a": 1}),
    RoundTrip("nan-and-infinities", [float("inf"), float("-inf")]),
    RoundTrip(
        "strings-that-look-like-other-things",
        [
            "true",
            "no",
            "~",
            "null",
            "1.5",
            "0x1F",
            "1:30",
            "2024-01-01",
            "<<",
            "!tag",
            "*x",
            "&y",
            "- a",
            "? k",
            "# c",
            "'",
            '"',
        ],
    ),
    RoundTrip("long-string", "word " * 1000),
    RoundTrip("multi-line-string", "line one\nline two\n\n  indented\ttab\r\nwindows"),
    RoundTrip("same-list-twice", [[1, 2]] * 2),
)


class TestYamlSerializer(SerializerSuite):
    extra_roundtrip_values = (*JSON_TAGGED_ROUNDTRIPS, *YAML_ROUNDTRIPS)
    malformed_inputs = (
        *SerializerSuite.malformed_inputs,
        b"{unclosed: [1, 2",
        b"key: value\n  bad: indentation\n",
        b"a: b: c",
        b"\t- tab indentation",
        b"- a\nb: c",
        b"!!binary not-base64!",
        b"!!timestamp 2024-13-45",
        b"",
    )
    #: A prefix of a YAML document is often a document itself.
    detects_truncation = False
    # The suite's ``serializer`` fixture is conftest.py's: libyaml, then pure Python.


def test_the_serializer_uses_celerys_name_and_content_type() -> None:
    assert (YamlSerializer.name, YamlSerializer.content_type) == ("yaml", "application/x-yaml")
