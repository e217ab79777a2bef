"""Bytes from a producer that is not to be trusted: whatever they are, loads
returns a value or raises SerializationError with a clear message, never
another exception, and never allocates far beyond the input."""

from __future__ import annotations

import datetime as dt
import struct
import time
import tracemalloc
import uuid
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from petiole_msgpack import extensions
from petiole_msgpack.serializer import MAX_SET_NESTING, MsgpackSerializer

from petiole.plugin_api import MAX_HASH_COLLISIONS, SerializationError

RICH_VALUE = {
    "args": [1, -(2**70), 2.5, "ü", b"\x00", None, True, (1, 2)],
    "kwargs": {
        "when": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc),
        "day": dt.date(2024, 1, 2),
        "at": dt.time(3, 4),
        "for": dt.timedelta(hours=1),
        "id": uuid.UUID(int=3),
        "price": Decimal("9.99"),
        "tags": {"a", "b"},
        "frozen": frozenset({1}),
        7: {(1, 2): "tuple key"},
    },
}


def _ext(code: int, payload: bytes) -> bytes:
    """An ext 32 of any code (msgpack.ExtType refuses negative ones)."""
    return b"\xc9" + struct.pack(">Ib", len(payload), code) + payload


def _refused(serializer: MsgpackSerializer, data: bytes, match: str) -> None:
    with pytest.raises(SerializationError, match=match):
        serializer.loads(data)


# -- malformed, truncated, trailing ------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"\xc1", b"\x92\x01\xc1", b"\x81\xc1\x01"],
    ids=["reserved-byte", "in-an-array", "as-a-key"],
)
def test_a_byte_no_msgpack_value_starts_with_is_refused(
    serializer: MsgpackSerializer, data: bytes
) -> None:
    _refused(serializer, data, "malformed msgpack body")


def test_every_truncation_of_a_document_is_refused_as_truncated(
    serializer: MsgpackSerializer,
) -> None:
    data = serializer.dumps(RICH_VALUE)

    for end in range(len(data)):
        # The pure-Python unpacker sees some cuts as a length over what is left.
        with pytest.raises(SerializationError, match=r"body: (truncated|a length claims more)"):
            serializer.loads(data[:end])


def test_an_empty_body_is_refused(serializer: MsgpackSerializer) -> None:
    _refused(serializer, b"", "truncated: the 0 bytes end inside a value")


def test_trailing_bytes_after_the_document_are_refused(serializer: MsgpackSerializer) -> None:
    _refused(serializer, serializer.dumps({"a": 1}) + b"\x01\x02", "2 trailing bytes")


def test_a_string_that_is_not_utf8_is_refused(serializer: MsgpackSerializer) -> None:
    _refused(serializer, b"\xa2\xc3\x28", "a string is not valid UTF-8")


# -- extension types -----------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 12, 42, 127, -2, -128])
def test_an_unknown_extension_code_is_refused_naming_it(
    serializer: MsgpackSerializer, code: int
) -> None:
    _refused(serializer, _ext(code, b"\x00"), f"unknown msgpack extension type {code} ")


BAD_PAYLOADS = [
    ("datetime-short", extensions.DATETIME_NAIVE, b"\x00" * 11, r"11 bytes, expected 12"),
    (
        "datetime-microseconds",
        extensions.DATETIME_NAIVE,
        struct.pack(">qI", 0, 1_000_000),
        "microseconds 1000000 outside",
    ),
    (
        "datetime-after-9999",
        extensions.DATETIME_NAIVE,
        struct.pack(">qI", 2**62, 0),
        "naive datetime",
    ),
    (
        "datetime-offset-24h",
        extensions.DATETIME_AWARE,
        struct.pack(">qIq", 0, 0, 86400 * 10**6),
        "not under 24 hours",
    ),
    ("date-out-of-range", extensions.DATE, struct.pack(">i", 2**31 - 1), r"extension 3 \(date\)"),
    ("time-past-midnight", extensions.TIME_NAIVE, struct.pack(">q", 86400 * 10**6), "time of day"),
    ("time-negative", extensions.TIME_NAIVE, struct.pack(">q", -1), "time of day"),
    (
        "time-offset",
        extensions.TIME_AWARE,
        struct.pack(">qq", 0, -(2**62)),
        "not under 24 hours",
    ),
    ("timedelta-huge", extensions.TIMEDELTA, struct.pack(">qI", 2**62, 0), "timedelta"),
    ("uuid-short", extensions.UUID, b"\x00" * 15, "15 bytes, expected 16"),
    ("decimal-not-a-number", extensions.DECIMAL, b"12abc", "not a decimal number"),
    ("decimal-not-ascii", extensions.DECIMAL, "١٢".encode(), "not a decimal number"),
    ("decimal-empty", extensions.DECIMAL, b"", "not a decimal number"),
    ("big-int-empty", extensions.BIG_INT, b"", "no bytes"),
    ("set-not-an-array", extensions.SET, msgpack.packb({"a": 1}), "an array of elements expected"),
    ("set-truncated", extensions.SET, b"\x92\x01", r"extension 9 \(set\): truncated"),
    ("set-trailing-bytes", extensions.FROZENSET, b"\x91\x01\x01", "1 trailing bytes"),
    ("set-of-maps", extensions.SET, msgpack.packb([{"a": 1}]), "set element must be hashable"),
    ("timestamp-length", -1, b"\x00" * 5, r"extension -1 \(timestamp\) payload"),
    ("timestamp-after-9999", -1, struct.pack(">Iq", 0, 2**40), "out of range"),
]


@pytest.mark.parametrize(
    ("code", "payload", "match"),
    [case[1:] for case in BAD_PAYLOADS],
    ids=[case[0] for case in BAD_PAYLOADS],
)
def test_a_bad_payload_in_a_known_extension_is_refused_naming_the_problem(
    serializer: MsgpackSerializer, code: int, payload: bytes, match: str
) -> None:
    _refused(serializer, _ext(code, payload), match)


def test_sets_nested_deeper_than_the_limit_are_refused_both_ways(
    serializer: MsgpackSerializer,
) -> None:
    ok: Any = frozenset({1})
    for _ in range(MAX_SET_NESTING - 1):
        ok = frozenset({ok})
    assert serializer.loads(serializer.dumps(ok)) == ok

    with pytest.raises(SerializationError, match=f"nested more than {MAX_SET_NESTING} deep"):
        serializer.dumps(frozenset({ok}))
    payload = b"\x91\x01"
    for _ in range(MAX_SET_NESTING + 1):
        payload = b"\x91" + _ext(extensions.FROZENSET, payload)
    _refused(serializer, _ext(extensions.FROZENSET, payload), "nested more than")


# -- nesting and size claims -------------------------------------------------------------


@pytest.mark.parametrize("container", [b"\x91", b"\x81\x00"], ids=["arrays", "maps"])
def test_absurdly_nested_input_is_refused(serializer: MsgpackSerializer, container: bytes) -> None:
    _refused(serializer, container * 100_000 + b"\xc0", "nested too deeply")


CLAIMS = [
    ("array32", b"\xdd\xff\xff\xff\xff"),
    ("map32", b"\xdf\xff\xff\xff\xff"),
    ("str32", b"\xdb\xff\xff\xff\xff"),
    ("bin32", b"\xc6\xff\xff\xff\xff"),
    ("ext32", b"\xc9\x7f\xff\xff\xff\x01"),
    ("array16-in-array32", b"\xdd\x00\x01\x00\x00\xdc\xff\xff"),
]


@pytest.mark.parametrize("data", [c[1] for c in CLAIMS], ids=[c[0] for c in CLAIMS])
def test_a_length_larger_than_the_input_is_refused(
    serializer: MsgpackSerializer, data: bytes
) -> None:
    _refused(serializer, data + b"\x00" * 16, "truncated|claims more than")


def test_an_ext32_length_msgpack_reads_as_zero_is_refused(serializer: MsgpackSerializer) -> None:
    # 2**32 - 1, plus the type byte, wraps to 0 in msgpack's C unpacker: refused all
    # the same (as trailing bytes), with nothing allocated.
    _refused(serializer, b"\xc9\xff\xff\xff\xff\x01" + b"\x00" * 16, "malformed msgpack body")


def test_nested_length_claims_allocate_nothing_like_what_they_claim(
    serializer: MsgpackSerializer,
) -> None:
    # 1000 nested array headers, each claiming as many elements as the input has
    # bytes: msgpack's C unpacker allocates for each what it claims (80 MB for these
    # 100 kB, measured) before finding the input too short.
    size = 100_000
    data = (b"\xdd" + size.to_bytes(4, "big")) * 1000
    data += b"\x00" * (size - len(data))

    tracemalloc.start()
    try:
        # Nested too deeply for the pure-Python unpacker, which recurses.
        with pytest.raises(SerializationError, match=r"truncated|nested too deeply"):
            serializer.loads(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 20 * size  # 2 MB


# -- hash collisions ---------------------------------------------------------------------

# Python hashes an int (and a UUID, whose hash is its int's) modulo this prime.
_HASH_MODULUS = 2**61 - 1


def _colliding_uuids(count: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=7 + i * _HASH_MODULUS) for i in range(count)]


def test_a_map_whose_keys_were_crafted_to_share_a_hash_is_refused_fast(
    serializer: MsgpackSerializer,
) -> None:
    keys = _colliding_uuids(20_000)
    assert len({hash(k) for k in keys}) == 1
    # Written by hand: building that dict here would take as long as reading it.
    data = b"\xdf" + struct.pack(">I", len(keys))
    data += b"".join(serializer.dumps(key) + b"\x00" for key in keys)

    started = time.monotonic()
    _refused(serializer, data, "20000 map keys: 20000 of them share one hash")
    assert time.monotonic() - started < 5  # building it would take minutes


def test_a_set_whose_elements_share_a_hash_is_refused(serializer: MsgpackSerializer) -> None:
    data = serializer.dumps(set(_colliding_uuids(MAX_HASH_COLLISIONS + 2)))

    _refused(serializer, data, "10 set elements: 10 of them share one hash")


def test_a_few_keys_sharing_a_hash_are_accepted(serializer: MsgpackSerializer) -> None:
    value = dict.fromkeys(_colliding_uuids(MAX_HASH_COLLISIONS + 1), 0)

    assert serializer.loads(serializer.dumps(value)) == value


def test_many_distinct_uuid_keys_are_accepted(serializer: MsgpackSerializer) -> None:
    value = {uuid.uuid4(): i for i in range(5000)}

    assert serializer.loads(serializer.dumps(value)) == value


def test_big_int_keys_crafted_to_share_a_hash_are_refused(serializer: MsgpackSerializer) -> None:
    """msgpack's own ints stop at 64 bits, but a bigger one (extension 11) is an int too."""
    keys = [2**70 + i * _HASH_MODULUS for i in range(MAX_HASH_COLLISIONS + 2)]
    assert len({hash(k) for k in keys}) == 1

    _refused(serializer, serializer.dumps(dict.fromkeys(keys, 0)), "10 map keys: 10 of them share")


def test_a_map_as_a_key_is_refused(serializer: MsgpackSerializer) -> None:
    _refused(serializer, b"\x81\x81\x01\x02\x03", "map key must be hashable")


# -- anything at all -----------------------------------------------------------------------

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same inputs on every run: a failure reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _loads_or_serialization_error(serializer: MsgpackSerializer, data: bytes) -> None:
    try:
        value = serializer.loads(data)
    except SerializationError:
        return
    serializer.dumps(value)  # whatever it read is plain data it can write


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_load_or_raise_serialization_error(
    serializer: MsgpackSerializer, data: bytes
) -> None:
    _loads_or_serialization_error(serializer, data)


@FUZZ
@given(st.data())
def test_a_document_with_bytes_changed_loads_or_raises_serialization_error(
    serializer: MsgpackSerializer, data: st.DataObject
) -> None:
    document = bytearray(serializer.dumps(RICH_VALUE))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(document) - 1))
        document[index] = data.draw(st.integers(0, 255))

    _loads_or_serialization_error(serializer, bytes(document))
