"""Dicts and sets built from untrusted input, without a hash-collision blow-up.

A dict or set of *n* keys that share one hash costs *n²/2* comparisons to build.
``str`` and ``bytes`` hashes are salted per process, and msgpack's integers and
floats are too small to share a hash more than a handful of times, so maps whose
keys are all of those are built directly. A UUID, a Decimal or a big int hashes
to its value modulo a public prime, so a producer could send thousands of
distinct UUIDs that all collide, and a 1 MiB message would take minutes to
build. Keys of such types are counted first: more than
:data:`MAX_HASH_COLLISIONS` collisions in one map or set refuses it.

A tuple is written as an array and read back as a list, which cannot be a key
or a set element; there, lists are read back as tuples again, so a dict with
tuple keys (or a set of tuples) round-trips.
"""

from __future__ import annotations

from typing import Any

from petiole.plugin_api import SerializationError

#: Keys sharing a hash with another key, allowed per map or set. Distinct values
#: that share a hash are a 1 in 2**61 accident in real data.
MAX_HASH_COLLISIONS = 8

# Types whose hashes a producer cannot make collide at will (see the module doc).
_PLAIN_KEYS = frozenset({str, bytes, int, float, bool, type(None)})


def checked_map(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """The dict of ``pairs`` (msgpack's ``object_pairs_hook``)."""
    for key, _ in pairs:
        if key.__class__ not in _PLAIN_KEYS:
            keys = _hashable([k for k, _ in pairs], "map key")
            return dict(zip(keys, (v for _, v in pairs), strict=True))
    return dict(pairs)


def checked_set(items: list[Any], *, frozen: bool) -> set[Any] | frozenset[Any]:
    elements = _hashable(items, "set element")
    return frozenset(elements) if frozen else set(elements)


def _hashable(values: list[Any], what: str) -> list[Any]:
    values = [_freeze(v) if v.__class__ is list else v for v in values]
    try:
        hashes = {hash(v) for v in values}
    except TypeError as exc:  # a map as a key: no Python value can be one
        raise SerializationError(f"a {what} must be hashable: {exc}") from exc
    collisions = len(values) - len(hashes)
    if collisions > MAX_HASH_COLLISIONS:
        raise SerializationError(
            f"refusing a map or set whose {len(values)} {what}s share only {len(hashes)} "
            f"hashes (over {MAX_HASH_COLLISIONS} collisions): crafted to be slow to build"
        )
    return values


def _freeze(value: list[Any]) -> tuple[Any, ...]:
    return tuple(_freeze(v) if v.__class__ is list else v for v in value)
