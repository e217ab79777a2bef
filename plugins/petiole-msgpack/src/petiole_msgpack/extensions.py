"""The msgpack extension types petiole-msgpack writes: codes and byte layouts.

msgpack has no type for dates, UUIDs, decimals or sets, so each travels as an
*extension type*: a code (a signed byte) and a payload. The codes and layouts
below are a contract, so that a program in another language can read and write
them. Integers are big-endian; ``>qI`` and the like are :mod:`struct` formats
(``q`` int64, ``I`` uint32, ``i`` int32). "Floor" means the seconds are rounded
down and the microseconds counted up from there, so they are never negative.

====  ==========================  ===========================================================
code  Python value                payload
====  ==========================  ===========================================================
1     ``datetime``, naive         12 bytes ``>qI``: seconds from 1970-01-01T00:00:00 to the
                                  wall-clock time (floor), microseconds (0-999999)
2     ``datetime``, aware         20 bytes ``>qIq``: seconds since the Unix epoch, UTC
                                  (floor), microseconds (0-999999), the UTC offset in
                                  microseconds (east positive, under 24 hours)
3     ``date``                    4 bytes ``>i``: days since 1970-01-01
4     ``time``, naive             8 bytes ``>q``: microseconds since midnight
5     ``time``, aware             16 bytes ``>qq``: microseconds since midnight (wall
                                  clock), the UTC offset in microseconds
6     ``timedelta``               12 bytes ``>qI``: seconds (floor), microseconds (0-999999)
7     ``UUID``                    16 bytes: the UUID's bytes, most significant first
8     ``Decimal``                 ASCII: the number as Python's ``str()`` writes it, exact
                                  (``1.10``, ``-1.2E+5``, ``NaN``, ``-Infinity``)
9     ``set``                     a msgpack document: an array of the elements
10    ``frozenset``               a msgpack document: an array of the elements
11    ``int`` beyond 64 bits      the integer in two's complement, big-endian, at least
                                  one byte (msgpack's own integers stop at 64 bits)
-1    msgpack's timestamp         read as an aware ``datetime`` in UTC; never written
====  ==========================  ===========================================================

Everything else is msgpack's own: ``None``, ``bool``, ``int`` (64-bit), ``float``
(64-bit), ``str`` (UTF-8), ``bytes`` / ``bytearray`` / ``memoryview`` (the bin
type, read back as ``bytes``), lists and tuples (arrays, read back as lists),
dicts (maps).

An aware ``datetime`` or ``time`` comes back with a fixed-offset
:class:`datetime.timezone` of the same offset: the zone's name (``Europe/Paris``)
is not sent, its offset at that moment is. This module encodes and decodes the
scalar types (codes 1-8, 11); sets hold other values, so the serializer, which
can pack and unpack those, handles codes 9 and 10.
"""

from __future__ import annotations

import datetime as dt
import functools
import struct
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from msgpack import ExtType

DATETIME_NAIVE = 1
DATETIME_AWARE = 2
DATE = 3
TIME_NAIVE = 4
TIME_AWARE = 5
TIMEDELTA = 6
UUID = 7
DECIMAL = 8
SET = 9
FROZENSET = 10
BIG_INT = 11
MSGPACK_TIMESTAMP = -1

#: What each code holds, for error messages.
NAMES: dict[int, str] = {
    DATETIME_NAIVE: "naive datetime",
    DATETIME_AWARE: "aware datetime",
    DATE: "date",
    TIME_NAIVE: "naive time",
    TIME_AWARE: "aware time",
    TIMEDELTA: "timedelta",
    UUID: "UUID",
    DECIMAL: "Decimal",
    SET: "set",
    FROZENSET: "frozenset",
    BIG_INT: "big int",
}

_SECONDS_MICROS = struct.Struct(">qI")
_SECONDS_MICROS_OFFSET = struct.Struct(">qIq")
_DAYS = struct.Struct(">i")
_MICROS = struct.Struct(">q")
_MICROS_OFFSET = struct.Struct(">qq")

_US = 1_000_000
_DAY_US = 86_400 * _US
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()


class BadPayload(ValueError):
    """An extension's payload does not follow its layout (the serializer names the code)."""


# -- encoding --------------------------------------------------------------------------


def _timedelta_us(value: dt.timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * _US + value.microseconds


def _time_us(value: dt.time) -> int:
    return ((value.hour * 60 + value.minute) * 60 + value.second) * _US + value.microsecond


def _encode_datetime(value: dt.datetime) -> ExtType:
    offset = value.utcoffset()
    # A difference of datetimes is a timedelta, which never overflows here and is
    # normalized as the layout wants: seconds rounded down, microseconds 0-999999.
    if offset is None:
        since = value - _EPOCH
        seconds = since.days * 86_400 + since.seconds
        return ExtType(DATETIME_NAIVE, _SECONDS_MICROS.pack(seconds, since.microseconds))
    since = value.replace(tzinfo=None) - _EPOCH - offset
    seconds = since.days * 86_400 + since.seconds
    payload = _SECONDS_MICROS_OFFSET.pack(seconds, since.microseconds, _timedelta_us(offset))
    return ExtType(DATETIME_AWARE, payload)


def _encode_date(value: dt.date) -> ExtType:
    return ExtType(DATE, _DAYS.pack(value.toordinal() - _EPOCH_ORDINAL))


def _encode_time(value: dt.time) -> ExtType:
    offset = value.utcoffset()
    if offset is None:
        return ExtType(TIME_NAIVE, _MICROS.pack(_time_us(value)))
    return ExtType(TIME_AWARE, _MICROS_OFFSET.pack(_time_us(value), _timedelta_us(offset)))


def _encode_timedelta(value: dt.timedelta) -> ExtType:
    return ExtType(TIMEDELTA, _SECONDS_MICROS.pack(*divmod(_timedelta_us(value), _US)))


def _encode_uuid(value: uuid.UUID) -> ExtType:
    return ExtType(UUID, value.bytes)


def _encode_decimal(value: Decimal) -> ExtType:
    return ExtType(DECIMAL, str(value).encode("ascii"))


def _encode_big_int(value: int) -> ExtType:
    # One bit more than the magnitude needs, for the sign.
    length = value.bit_length() // 8 + 1
    return ExtType(BIG_INT, value.to_bytes(length, "big", signed=True))


_ENCODERS: dict[type, Callable[[Any], ExtType]] = {
    dt.datetime: _encode_datetime,
    dt.date: _encode_date,
    dt.time: _encode_time,
    dt.timedelta: _encode_timedelta,
    uuid.UUID: _encode_uuid,
    Decimal: _encode_decimal,
    int: _encode_big_int,
}


def encode(value: Any) -> ExtType | None:
    """The extension for a scalar value msgpack has no type for, or None when this
    module has none for it (sets, arbitrary objects: the serializer decides)."""
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        # Subclasses (a datetime subclass is also a date: the order matters).
        encoder = next((e for t, e in _ENCODERS.items() if isinstance(value, t)), None)
        if encoder is None:
            return None
    return encoder(value)


# -- decoding --------------------------------------------------------------------------


def _unpack(layout: struct.Struct, payload: bytes) -> tuple[Any, ...]:
    if len(payload) != layout.size:
        raise BadPayload(f"{len(payload)} bytes, expected {layout.size}")
    return layout.unpack(payload)


def _micros(value: int) -> int:
    if not 0 <= value < _US:
        raise BadPayload(f"microseconds {value} outside 0-999999")
    return value


def _check_offset(offset_us: int) -> int:
    if not -_DAY_US < offset_us < _DAY_US:
        raise BadPayload(f"UTC offset of {offset_us} microseconds is not under 24 hours")
    return offset_us


@functools.lru_cache(maxsize=64)  # a cluster sends a handful of offsets
def _zone(offset_us: int) -> dt.timezone:
    return dt.timezone(dt.timedelta(microseconds=_check_offset(offset_us)))


@functools.lru_cache(maxsize=64)
def _wall_epoch(offset_us: int) -> dt.datetime:
    """1970-01-01T00:00 on the wall clock of that offset."""
    return _EPOCH.replace(tzinfo=_zone(offset_us))


def _decode_datetime_naive(payload: bytes) -> dt.datetime:
    seconds, micros = _unpack(_SECONDS_MICROS, payload)
    return _EPOCH + dt.timedelta(0, seconds, _micros(micros))


def _decode_datetime_aware(payload: bytes) -> dt.datetime:
    seconds, micros, offset_us = _unpack(_SECONDS_MICROS_OFFSET, payload)
    # The UTC time plus the offset is the wall clock; the sum stays in the offset's zone.
    return _wall_epoch(offset_us) + dt.timedelta(0, seconds, _micros(micros) + offset_us)


def _decode_date(payload: bytes) -> dt.date:
    (days,) = _unpack(_DAYS, payload)
    return dt.date.fromordinal(days + _EPOCH_ORDINAL)


def _time(micros_since_midnight: int, zone: dt.timezone | None) -> dt.time:
    if not 0 <= micros_since_midnight < _DAY_US:
        raise BadPayload(f"{micros_since_midnight} microseconds is not a time of day")
    seconds, micros = divmod(micros_since_midnight, _US)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return dt.time(hour, minute, second, micros, tzinfo=zone)


def _decode_time_naive(payload: bytes) -> dt.time:
    (micros,) = _unpack(_MICROS, payload)
    return _time(micros, None)


def _decode_time_aware(payload: bytes) -> dt.time:
    micros, offset_us = _unpack(_MICROS_OFFSET, payload)
    return _time(micros, _zone(offset_us))


def _decode_timedelta(payload: bytes) -> dt.timedelta:
    seconds, micros = _unpack(_SECONDS_MICROS, payload)
    return dt.timedelta(0, seconds, _micros(micros))


def _decode_uuid(payload: bytes) -> uuid.UUID:
    if len(payload) != 16:
        raise BadPayload(f"{len(payload)} bytes, expected 16")
    return uuid.UUID(bytes=payload)


def _decode_decimal(payload: bytes) -> Decimal:
    try:
        return Decimal(payload.decode("ascii"))
    except (UnicodeDecodeError, InvalidOperation) as exc:
        raise BadPayload(f"{payload[:40]!r} is not a decimal number") from exc


def _decode_big_int(payload: bytes) -> int:
    if not payload:
        raise BadPayload("no bytes")
    return int.from_bytes(payload, "big", signed=True)


DECODERS: dict[int, Callable[[bytes], Any]] = {
    DATETIME_NAIVE: _decode_datetime_naive,
    DATETIME_AWARE: _decode_datetime_aware,
    DATE: _decode_date,
    TIME_NAIVE: _decode_time_naive,
    TIME_AWARE: _decode_time_aware,
    TIMEDELTA: _decode_timedelta,
    UUID: _decode_uuid,
    DECIMAL: _decode_decimal,
    BIG_INT: _decode_big_int,
}
"""The decoder of each scalar code; each raises ValueError (:class:`BadPayload`, or
the standard library's, such as a date out of range) or OverflowError."""
