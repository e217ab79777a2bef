"""The wire format: each extension type's code and byte layout, as
petiole_msgpack.extensions and the README document them, in both directions
(what this plugin writes, and what another program may write for it to read)."""

from __future__ import annotations

import datetime as dt
import re
import struct
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import pytest
from petiole_msgpack import extensions
from petiole_msgpack.serializer import MsgpackSerializer

UTC = dt.timezone.utc
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
MINUS_ONE_HOUR = dt.timezone(-dt.timedelta(hours=1))
A_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")

# (value, code, payload): the table of the module doc, one example per row (and the
# edges of "floor": a time before the epoch has negative seconds, positive microseconds).
LAYOUTS: list[tuple[str, Any, int, bytes]] = [
    ("datetime-naive", dt.datetime(1970, 1, 1, 0, 0, 1, 5), 1, struct.pack(">qI", 1, 5)),
    (
        "datetime-naive-before-1970",
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
        1,
        struct.pack(">qI", -1, 999999),
    ),
    (
        "datetime-aware",
        dt.datetime(1970, 1, 1, 5, 30, 0, 6, tzinfo=IST),  # 00:00:00.000006 UTC
        2,
        struct.pack(">qIq", 0, 6, 19800 * 10**6),
    ),
    (
        "datetime-aware-utc",
        dt.datetime(2024, 2, 29, 12, 0, tzinfo=UTC),
        2,
        struct.pack(">qIq", 1709208000, 0, 0),
    ),
    ("date", dt.date(1970, 1, 2), 3, struct.pack(">i", 1)),
    ("date-before-1970", dt.date(1969, 12, 31), 3, struct.pack(">i", -1)),
    ("time-naive", dt.time(0, 0, 1, 2), 4, struct.pack(">q", 1_000_002)),
    (
        "time-aware",
        dt.time(1, 0, tzinfo=MINUS_ONE_HOUR),
        5,
        struct.pack(">qq", 3600 * 10**6, -3600 * 10**6),
    ),
    ("timedelta", dt.timedelta(days=1, microseconds=3), 6, struct.pack(">qI", 86400, 3)),
    (
        "timedelta-negative",
        dt.timedelta(microseconds=-999_999),
        6,
        struct.pack(">qI", -1, 1),
    ),
    ("uuid", A_UUID, 7, bytes.fromhex("12345678123456781234567812345678")),
    ("decimal", Decimal("-1.10"), 8, b"-1.10"),
    ("decimal-exponent", Decimal("1.2E+5"), 8, b"1.2E+5"),
    ("set", {1}, 9, b"\x91\x01"),
    ("frozenset", frozenset({"a"}), 10, b"\x91\xa1a"),
    ("int-past-64-bits", 2**64, 11, b"\x01" + bytes(8)),
    ("negative-int-past-64-bits", -(2**63) - 1, 11, b"\xff\x7f" + b"\xff" * 7),
]
IDS = [name for name, *_ in LAYOUTS]


@pytest.mark.parametrize(("name", "value", "code", "payload"), LAYOUTS, ids=IDS)
def test_each_type_is_written_as_its_documented_extension(
    serializer: MsgpackSerializer, name: str, value: Any, code: int, payload: bytes
) -> None:
    # Read back with msgpack alone, as a program knowing only the table would.
    written = msgpack.unpackb(serializer.dumps(value), ext_hook=msgpack.ExtType)

    assert written == msgpack.ExtType(code, payload)


@pytest.mark.parametrize(("name", "value", "code", "payload"), LAYOUTS, ids=IDS)
def test_an_extension_written_by_another_program_is_read_as_its_type(
    serializer: MsgpackSerializer, name: str, value: Any, code: int, payload: bytes
) -> None:
    got = serializer.loads(msgpack.packb(msgpack.ExtType(code, payload)))

    assert (type(got), got) == (type(value), value)
    if isinstance(value, (dt.datetime, dt.time)):
        assert got.utcoffset() == value.utcoffset()


def test_an_aware_datetime_comes_back_with_its_offset_not_its_zone_name(
    serializer: MsgpackSerializer,
) -> None:
    zone = dt.timezone(dt.timedelta(hours=-3), "BRT")
    value = dt.datetime(2024, 6, 1, 12, 0, 0, 250000, tzinfo=zone)

    got = serializer.loads(serializer.dumps(value))

    assert got == value
    assert got.utcoffset() == dt.timedelta(hours=-3)
    assert got.tzinfo == dt.timezone(dt.timedelta(hours=-3))


def test_bytes_use_msgpacks_own_bin_type(serializer: MsgpackSerializer) -> None:
    assert serializer.dumps(b"\x00\xff") == b"\xc4\x02\x00\xff"
    assert serializer.dumps(bytearray(b"\x07")) == b"\xc4\x01\x07"


def test_tuples_are_written_as_arrays_and_come_back_as_lists(
    serializer: MsgpackSerializer,
) -> None:
    data = serializer.dumps((1, (2, "x")))

    assert data == msgpack.packb([1, [2, "x"]])
    assert serializer.loads(data) == [1, [2, "x"]]


def test_int_keys_are_written_as_msgpack_ints(serializer: MsgpackSerializer) -> None:
    data = serializer.dumps({1: "a"})

    assert data == b"\x81\x01\xa1a"
    assert serializer.loads(data) == {1: "a"}


def test_msgpacks_own_timestamp_is_read_as_an_aware_utc_datetime(
    serializer: MsgpackSerializer,
) -> None:
    # What other languages' msgpack libraries write for a time (extension -1).
    written = msgpack.packb(msgpack.Timestamp(seconds=1, nanoseconds=5000))

    got = serializer.loads(written)

    assert got == dt.datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)
    assert got.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    "doc",
    [Path(extensions.__file__), Path(__file__).parents[1] / "README.md"],
    ids=["module-doc", "readme"],
)
def test_the_documented_tables_list_every_code(doc: Path) -> None:
    text = doc.read_text()
    documented = {int(m) for m in re.findall(r"^\|?\s*(-?\d+)\s+", text, re.M)}

    assert set(extensions.NAMES) | {extensions.MSGPACK_TIMESTAMP} <= documented
