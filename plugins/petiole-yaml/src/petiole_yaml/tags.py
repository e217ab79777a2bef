"""How each Python value is written in YAML, and the ``!petiole/...`` tags.

YAML's safe types cover plain data, dates, binary and sets; the rest travel
under local tags of petiole-yaml's own, each a scalar or a mapping a program in
another language can read:

=============================  ==============================================================
Python value                   YAML
=============================  ==============================================================
``None``, ``bool``, ``int``,   ``null``, ``true``/``false``, integers (any size up to
``float``, ``str``             :data:`MAX_INT_CHARS` characters), floats (``.inf``,
                               ``.nan``), strings (UTF-8)
``list``, ``tuple``            a sequence (comes back as a ``list``)
``dict``                       a mapping; keys keep their type (``{1: a}`` keeps its int key)
``bytes``, ``bytearray``       ``!!binary`` (base64); comes back as ``bytes``
``date``                       a ``!!timestamp``: ``2024-01-31``
``datetime``                   a ``!!timestamp``: ``2024-01-31 13:14:15.000016+05:30``
                               (naive: no offset). One whose UTC offset is not whole
                               minutes, which a timestamp cannot hold:
                               ``!petiole/datetime`` and its ISO 8601 text
``time``                       ``!petiole/time 13:14:15.161718`` (ISO 8601; with
                               ``+05:30`` if aware)
``timedelta``                  ``!petiole/timedelta -90.000001``: signed seconds, at most
                               six decimals (exact)
``UUID``                       ``!petiole/uuid 12345678-1234-5678-1234-567812345678``
``Decimal``                    ``!petiole/decimal 1.10`` (exact, as ``str()`` writes it)
``set``                        ``!!set`` (a mapping of the elements to ``null``)
``frozenset``                  ``!petiole/frozenset``, laid out as ``!!set``
=============================  ==============================================================

Subclasses of these (an ``IntEnum``, an ``OrderedDict``) are written as the type
they derive from. A tuple that is a dict key or a set element comes back as a
tuple (a list cannot be one). An aware ``datetime`` or ``time`` comes back with
a fixed-offset :class:`datetime.timezone` of the same offset.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from yaml import MappingNode, Node, ScalarNode
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.representer import SafeRepresenter

DATETIME = "!petiole/datetime"
TIME = "!petiole/time"
TIMEDELTA = "!petiole/timedelta"
UUID = "!petiole/uuid"
DECIMAL = "!petiole/decimal"
FROZENSET = "!petiole/frozenset"

#: The longest integer read, in characters: Python's own limit on decimal digits
#: (``sys.get_int_max_str_digits()``). It also bounds YAML 1.1's base-60 integers
#: (``1:30:00``), whose value PyYAML computes in time quadratic in their length.
MAX_INT_CHARS = 4300

_INT = "tag:yaml.org,2002:int"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_US = 1_000_000
_SECONDS = re.compile(r"(-?)([0-9]{1,15})(?:\.([0-9]{1,6}))?")


# -- writing -----------------------------------------------------------------------------


def _represent_datetime(dumper: SafeRepresenter, value: dt.datetime) -> ScalarNode:
    offset = value.utcoffset()
    if offset is None or (offset.seconds % 60 == 0 and offset.microseconds == 0):
        return dumper.represent_datetime(value)
    return dumper.represent_scalar(DATETIME, value.isoformat())


def _represent_time(dumper: SafeRepresenter, value: dt.time) -> ScalarNode:
    return dumper.represent_scalar(TIME, value.isoformat())


def _represent_timedelta(dumper: SafeRepresenter, value: dt.timedelta) -> ScalarNode:
    micros = (value.days * 86_400 + value.seconds) * _US + value.microseconds
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), _US)
    text = f"{sign}{seconds}.{fraction:06d}" if fraction else f"{sign}{seconds}"
    return dumper.represent_scalar(TIMEDELTA, text)


def _represent_uuid(dumper: SafeRepresenter, value: uuid.UUID) -> ScalarNode:
    return dumper.represent_scalar(UUID, str(value))


def _represent_decimal(dumper: SafeRepresenter, value: Decimal) -> ScalarNode:
    return dumper.represent_scalar(DECIMAL, str(value))


def _represent_frozenset(dumper: SafeRepresenter, value: frozenset[Any]) -> MappingNode:
    return dumper.represent_mapping(FROZENSET, dict.fromkeys(value))


def _represent_binary(dumper: SafeRepresenter, value: bytearray | memoryview) -> ScalarNode:
    return dumper.represent_binary(bytes(value))


#: Type -> representer, for the type and its subclasses.
REPRESENTERS: dict[type, Callable[[Any, Any], Node]] = {
    tuple: lambda d, v: d.represent_list(v),
    bytearray: _represent_binary,
    memoryview: _represent_binary,
    dt.datetime: _represent_datetime,
    dt.time: _represent_time,
    dt.timedelta: _represent_timedelta,
    uuid.UUID: _represent_uuid,
    Decimal: _represent_decimal,
    frozenset: _represent_frozenset,
}

#: Subclasses of the types the safe dumper writes (IntEnum, OrderedDict), as the
#: type they derive from; converted first, since a subclass may override ``__str__``
#: (an Enum does) or ``items``.
SUBCLASS_REPRESENTERS: dict[type, Callable[[Any, Any], Node]] = {
    dict: lambda d, v: d.represent_dict(dict(v)),
    list: lambda d, v: d.represent_list(list(v)),
    str: lambda d, v: d.represent_str(str.__str__(v)),
    int: lambda d, v: d.represent_int(int(v)),
    float: lambda d, v: d.represent_float(float(v)),
    bytes: lambda d, v: d.represent_binary(bytes(v)),
    set: lambda d, v: d.represent_set(set(v)),
    dt.date: lambda d, v: d.represent_date(dt.date(v.year, v.month, v.day)),
}


# -- reading -----------------------------------------------------------------------------


def _scalar(loader: SafeConstructor, node: Node) -> str:
    if not isinstance(node, ScalarNode):
        raise _wrong_node(node, "a scalar")
    return loader.construct_scalar(node)


def _wrong_node(node: Node, expected: str) -> ConstructorError:
    kind = type(node).__name__.removesuffix("Node").lower()
    return ConstructorError(
        None, None, f"{node.tag} must be {expected}, not a {kind}", node.start_mark
    )


def _value_error(node: Node, problem: str) -> ConstructorError:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    return ConstructorError(None, None, f"bad {tag} value: {problem}", node.start_mark)


def _construct_datetime(loader: SafeConstructor, node: Node) -> dt.datetime:
    return dt.datetime.fromisoformat(_scalar(loader, node))


def _construct_time(loader: SafeConstructor, node: Node) -> dt.time:
    return dt.time.fromisoformat(_scalar(loader, node))


def _construct_timedelta(loader: SafeConstructor, node: Node) -> dt.timedelta:
    text = _scalar(loader, node)
    match = _SECONDS.fullmatch(text)
    if match is None:
        raise _value_error(node, f"{text[:40]!r} is not seconds like -90.000001")
    sign, seconds, fraction = match.groups()
    micros = int(seconds) * _US + int((fraction or "").ljust(6, "0"))
    return dt.timedelta(microseconds=-micros if sign else micros)


def _construct_uuid(loader: SafeConstructor, node: Node) -> uuid.UUID:
    return uuid.UUID(_scalar(loader, node))


def _construct_decimal(loader: SafeConstructor, node: Node) -> Decimal:
    return Decimal(_scalar(loader, node))


def _construct_frozenset(loader: SafeConstructor, node: Node) -> frozenset[Any]:
    if not isinstance(node, MappingNode):
        raise _wrong_node(node, "a mapping")
    # Deep: a frozenset cannot be filled in later, as PyYAML fills lists and dicts.
    return frozenset(loader.construct_mapping(node, deep=True))


def _construct_int(loader: SafeConstructor, node: Node) -> int:
    if not isinstance(node, ScalarNode):
        raise _wrong_node(node, "a scalar")
    text = loader.construct_scalar(node)
    if len(text) > MAX_INT_CHARS:
        raise _value_error(node, f"an integer of {len(text)} characters (at most {MAX_INT_CHARS})")
    value: int = loader.construct_yaml_int(node)
    return value


def _construct_timestamp(loader: SafeConstructor, node: Node) -> dt.date | dt.datetime:
    if not isinstance(node, ScalarNode):
        raise _wrong_node(node, "a scalar")
    # PyYAML's own assumes its pattern matched, as it does when the tag is implicit.
    if loader.timestamp_regexp.match(loader.construct_scalar(node)) is None:
        raise _value_error(node, f"{node.value[:40]!r} is not a YAML timestamp")
    value: dt.date | dt.datetime = loader.construct_yaml_timestamp(node)
    return value


#: Tag -> constructor, added to the safe loader's own. Each raises ValueError (or
#: ConstructorError) on a value it cannot read.
CONSTRUCTORS: dict[str, Callable[[Any, Node], Any]] = {
    DATETIME: _construct_datetime,
    TIME: _construct_time,
    TIMEDELTA: _construct_timedelta,
    UUID: _construct_uuid,
    DECIMAL: _construct_decimal,
    FROZENSET: _construct_frozenset,
    _INT: _construct_int,
    _TIMESTAMP: _construct_timestamp,
}

#: Tags the safe loader reads that this serializer never writes and refuses: they
#: would hand a task tuples (``!!omap``, ``!!pairs``), which nothing else produces.
REFUSED_SAFE_TAGS = ("tag:yaml.org,2002:omap", "tag:yaml.org,2002:pairs")
