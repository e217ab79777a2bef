"""Dicts and sets built from untrusted input: the core's hash-flooding guard, with
arrays read back as tuples where a list cannot go.

A dict or set of keys crafted to share one hash takes time quadratic in their
number to build; :mod:`petiole.plugin_api`'s ``dict_from_untrusted`` and
``set_from_untrusted`` refuse more than ``MAX_HASH_COLLISIONS`` of them. That
includes int keys: msgpack's own integers stop at 64 bits, but a bigger one
(extension 11) is an ``int`` too, and hashes to whatever its sender chose.

A tuple is written as an array and read back as a list, which cannot be a key
or a set element; there, lists are read back as tuples again, so a dict with
tuple keys (or a set of tuples) round-trips.
"""

from __future__ import annotations

from typing import Any

from petiole.plugin_api import (
    SerializationError,
    dict_from_untrusted,
    frozenset_from_untrusted,
    set_from_untrusted,
)


def checked_map(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """The dict of ``pairs`` (msgpack's ``object_pairs_hook``)."""
    try:
        return dict_from_untrusted(pairs, what="map keys")
    except TypeError:
        pass  # an unhashable key: list keys are rare, so they are looked for only now
    frozen = [(_freeze(k) if k.__class__ is list else k, v) for k, v in pairs]
    try:
        return dict_from_untrusted(frozen, what="map keys")
    except TypeError as exc:  # a map as a key: no Python value can be one
        raise SerializationError(f"a map key must be hashable: {exc}") from exc


def checked_set(items: list[Any], *, frozen: bool) -> set[Any] | frozenset[Any]:
    """The set (or frozenset) of ``items``, the elements of a set extension."""
    build = frozenset_from_untrusted if frozen else set_from_untrusted
    try:
        return build(items, what="set elements")
    except TypeError:
        pass  # as in checked_map
    elements = [_freeze(v) if v.__class__ is list else v for v in items]
    try:
        return build(elements, what="set elements")
    except TypeError as exc:
        raise SerializationError(f"a set element must be hashable: {exc}") from exc


def _freeze(value: list[Any]) -> tuple[Any, ...]:
    return tuple(_freeze(v) if v.__class__ is list else v for v in value)
