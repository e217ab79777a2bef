"""Hash flooding: sets and dicts built from a message refuse values crafted to
share one hash (petiole.hash_flooding), in the JSON serializer and for plugins."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from petiole.errors import SerializationError
from petiole.hash_flooding import (
    MAX_HASH_COLLISIONS,
    check_hash_collisions,
    dict_from_untrusted,
    frozenset_from_untrusted,
    set_from_untrusted,
)
from petiole.serializers import TAG, JsonSerializer

# Python reduces an int's hash (and a UUID's, and an integral Decimal's) modulo this prime.
_HASH_MODULUS = 2**61 - 1


def _colliding_ints(count: int, start: int = 5) -> list[int]:
    return [start + i * _HASH_MODULUS for i in range(count)]


def _tagged_set_body(kind: str, elements: list[Any]) -> bytes:
    return json.dumps({TAG: kind, "v": elements}).encode()


def _tagged(kind: str, values: list[Any]) -> list[dict[str, str]]:
    return [{TAG: kind, "v": str(value)} for value in values]


@pytest.fixture
def serializer() -> JsonSerializer:
    return JsonSerializer()


# -- refused -----------------------------------------------------------------------------


def test_a_tagged_set_of_20000_colliding_ints_is_refused(serializer: JsonSerializer) -> None:
    # 495 kB: building this set unguarded took 4 s where this was written, and the
    # time grows with the square of the count. Refused, it takes milliseconds.
    elements = _colliding_ints(20_000)
    assert len({hash(e) for e in elements}) == 1

    with pytest.raises(
        SerializationError, match="20000 set elements: 20000 of them share one hash"
    ):
        serializer.loads(_tagged_set_body("set", elements))


@pytest.mark.parametrize(
    ("kind", "elements"),
    [
        # A UUID's equality test is Python code: unguarded, about 25 s where this was written.
        ("frozenset", _tagged("uuid", [uuid.UUID(int=i) for i in _colliding_ints(20_000)])),
        ("set", _tagged("decimal", _colliding_ints(MAX_HASH_COLLISIONS + 2))),
        ("set", [-i for i in _colliding_ints(MAX_HASH_COLLISIONS + 2)]),
    ],
    ids=["frozenset-of-uuids", "set-of-decimals", "set-of-negative-ints"],
)
def test_tagged_sets_of_colliding_values_of_each_kind_are_refused(
    serializer: JsonSerializer, kind: str, elements: list[Any]
) -> None:
    with pytest.raises(SerializationError, match=f"{kind} elements: .* share one hash"):
        serializer.loads(_tagged_set_body(kind, elements))


def test_one_more_than_the_allowed_collisions_is_refused(serializer: JsonSerializer) -> None:
    body = _tagged_set_body("set", _colliding_ints(MAX_HASH_COLLISIONS + 2))

    with pytest.raises(SerializationError, match=f"more than {MAX_HASH_COLLISIONS + 1} sharing"):
        serializer.loads(body)


def test_colliding_floats_are_refused() -> None:
    # A float's hash ignores 61 binary orders of magnitude: these differ, and share one.
    floats = [1.5 * 2.0 ** (61 * k) for k in range(-6, 6)]
    assert len({hash(f) for f in floats}) == 1

    with pytest.raises(SerializationError, match="12 set elements: 12 of them"):
        set_from_untrusted(floats)


def test_colliding_big_ints_among_small_ones_are_refused() -> None:
    values = [*range(1000), *_colliding_ints(MAX_HASH_COLLISIONS + 2, start=7)]

    with pytest.raises(SerializationError, match="share one hash"):
        frozenset_from_untrusted(values)


@pytest.mark.parametrize(
    "first", ["a", 0, True, None, b"x", dt.date(2024, 1, 1)], ids=lambda v: type(v).__name__
)
def test_colliding_values_after_one_of_a_type_that_cannot_collide_are_refused(
    first: Any,
) -> None:
    """The first value's type picks a cheap proof; the rest must not ride on it."""
    values = [first, *_colliding_ints(MAX_HASH_COLLISIONS + 2)]

    with pytest.raises(SerializationError, match="share one hash"):
        set_from_untrusted(values)


def test_a_dict_with_colliding_keys_is_refused_naming_them() -> None:
    pairs = [(k, "v") for k in _colliding_ints(50)]

    with pytest.raises(SerializationError, match="refusing 50 map keys: 50 of them share one hash"):
        dict_from_untrusted(pairs)


def test_check_hash_collisions_names_what_it_refuses() -> None:
    with pytest.raises(SerializationError, match="refusing 10 mapping keys"):
        check_hash_collisions(_colliding_ints(10), "mapping keys")


# -- accepted ----------------------------------------------------------------------------


def test_as_many_collisions_as_allowed_are_accepted(serializer: JsonSerializer) -> None:
    elements = _colliding_ints(MAX_HASH_COLLISIONS + 1)

    assert serializer.loads(_tagged_set_body("set", elements)) == set(elements)


def test_the_limit_is_per_hash_not_per_container() -> None:
    # Many hashes, each shared by the most allowed: building stays linear.
    values = [v for start in range(200) for v in _colliding_ints(MAX_HASH_COLLISIONS + 1, start)]

    assert set_from_untrusted(values) == set(values)


ROUND_TRIPS = {
    "small-ints": set(range(-50, 50)),  # -1 and -2 share a hash: one collision
    "big-ints": {2**64 + i for i in range(1000)} | {-(2**70), 2**61 - 2, 2**61 - 1, 2**61},
    "uuids": {uuid.UUID(int=i * 2**64 + i) for i in range(2000)},
    "decimals": {Decimal(i) / 100 for i in range(-1000, 1000)},
    "strings": {f"s{i}" for i in range(2000)},
    "datetimes": {dt.datetime(2024, 1, 1) + dt.timedelta(minutes=i) for i in range(500)},
    "mixed": {0, 2.5, "a", None, True, uuid.UUID(int=5), Decimal("5.5"), 2**100},
    "frozensets": {frozenset({i, i + 1}) for i in range(100)},
}


@pytest.mark.parametrize("value", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_real_sets_round_trip(serializer: JsonSerializer, value: set[Any]) -> None:
    assert serializer.loads(serializer.dumps(value)) == value
    assert serializer.loads(serializer.dumps(frozenset(value))) == frozenset(value)


def test_a_dict_keeps_the_last_value_of_a_repeated_key() -> None:
    pairs = [(i, "old") for i in range(20)] + [(3, "new")]

    assert dict_from_untrusted(pairs) == {**dict.fromkeys(range(20), "old"), 3: "new"}


# -- not hashable ------------------------------------------------------------------------


def test_an_unhashable_value_raises_type_error_as_set_does() -> None:
    """A serializer that reads tuples back as lists catches it to retry with tuples."""
    with pytest.raises(TypeError, match="unhashable"):
        set_from_untrusted([[1], *range(20)])
    with pytest.raises(TypeError, match="unhashable"):
        dict_from_untrusted([*((i, 0) for i in range(20)), ([1], 0)])


def test_a_tagged_set_of_lists_is_refused_naming_the_value(serializer: JsonSerializer) -> None:
    with pytest.raises(SerializationError, match=r"bad 'set' value \[\[1\]\]: TypeError"):
        serializer.loads(_tagged_set_body("set", [[1]]))
