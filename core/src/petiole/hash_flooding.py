"""Sets and dicts built from untrusted values, refusing hash flooding.

Building a set or dict of *n* distinct values that share one hash takes about
*n²/2* equality tests: each insert walks past every value already there with
that hash. For some types a sender picks the hash: an ``int`` hashes to its
value modulo the prime ``2**61 - 1`` (so ``5``, ``5 + (2**61 - 1)``, ... all
share one), a ``UUID`` to its int's, a ``Decimal`` and a ``Fraction`` likewise,
and a tuple or frozenset to a mix of its members'. A JSON set of 20,000 such
ints is 500 kB and took 4 s to load where this was written; the time grows with
the square of the size.

So a serializer builds every set, and every dict whose keys are not all strings,
from a message through :func:`set_from_untrusted`, :func:`frozenset_from_untrusted`
or :func:`dict_from_untrusted` (or calls :func:`check_hash_collisions` on the
keys first, when it builds the container itself). More than
:data:`MAX_HASH_COLLISIONS` values sharing one hash with another refuse the
container with :class:`~petiole.errors.SerializationError`. Distinct values share
a hash by accident about once in 2**61, so real data is never refused (a value
given twice may count as well; no serializer's ``dumps`` writes one twice).

The check adds a pass over the values, in C, and only where a collision is
possible. Containers of at most ``MAX_HASH_COLLISIONS + 1``
values (most task arguments) cannot hold too many and are built as they are.
For larger ones the first value's type picks a cheap proof: strs (whose hashes
are salted per process) are joined, ints are measured (below 2**60 an int is
its own hash), and ``bytes``, ``None`` and the ``datetime`` types (salted too)
are checked by type. Anything else (UUIDs, decimals, big ints, floats, tuples,
mixed types) is hashed once more, and only a container with collisions is
counted per hash.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from collections.abc import Collection, Hashable, Sequence
from operator import itemgetter
from typing import TypeVar, cast

from petiole.errors import SerializationError

#: Values allowed to share a hash with another in one set or dict (so at most
#: ``MAX_HASH_COLLISIONS + 1`` share any one hash). Enough for any accident;
#: eight collisions of twenty thousand values cost nothing to build.
MAX_HASH_COLLISIONS = 8

_MOST_SHARING_ONE_HASH = MAX_HASH_COLLISIONS + 1

# Python reduces an int's hash modulo a prime (2**61 - 1 on 64-bit builds), so an int
# of at most this many bits is its own hash (but -1, hashed as -2): no two such ints
# share one by a sender's choice.
_SELF_HASHING_BITS = sys.hash_info.modulus.bit_length() - 1

# Exact types whose hashes a sender cannot steer: str and bytes hashes (and the
# datetime types', computed from their bytes) are salted per process; bool and
# None have one or two values. Exact, not isinstance: a subclass may hash as it likes.
_UNSTEERABLE_TYPES = frozenset(
    {str, bytes, bool, type(None), dt.date, dt.datetime, dt.time, dt.timedelta}
)

_T = TypeVar("_T", bound=Hashable)
_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")

_first = itemgetter(0)


def check_hash_collisions(values: Collection[Hashable], what: str) -> None:
    """Refuse *values* if more than :data:`MAX_HASH_COLLISIONS` of them share a
    hash with another, before a set or dict of them is built.

    *what* names the values in the error, in the plural ("set elements",
    "map keys"). Raises :class:`~petiole.errors.SerializationError` naming it,
    how many values there are and how many share one hash; raises ``TypeError``
    for an unhashable value, as ``set()`` would (a serializer that reads tuples
    back as lists catches it to turn them into tuples). Returns ``None``: after
    it, building the container takes time linear in ``len(values)``.
    """
    if len(values) <= _MOST_SHARING_ONE_HASH or _unsteerable(values):
        return
    if len(values) - len(set(map(hash, values))) <= MAX_HASH_COLLISIONS:
        return  # no more collisions in all than one hash may have
    _, sharing = Counter(map(hash, values)).most_common(1)[0]
    if sharing > _MOST_SHARING_ONE_HASH:
        raise SerializationError(
            f"refusing {len(values)} {what}: {sharing} of them share one hash; more than "
            f"{_MOST_SHARING_ONE_HASH} sharing one is no accident but input crafted to be "
            "slow to load (building takes time quadratic in their number)"
        )


def set_from_untrusted(items: Collection[_T], *, what: str = "set elements") -> set[_T]:
    """``set(items)``, after :func:`check_hash_collisions` (which see for errors)."""
    if len(items) > _MOST_SHARING_ONE_HASH:  # spares small sets a call
        check_hash_collisions(items, what)
    return set(items)


def frozenset_from_untrusted(
    items: Collection[_T], *, what: str = "frozenset elements"
) -> frozenset[_T]:
    """``frozenset(items)``, after :func:`check_hash_collisions` (which see for errors)."""
    if len(items) > _MOST_SHARING_ONE_HASH:
        check_hash_collisions(items, what)
    return frozenset(items)


def dict_from_untrusted(pairs: Sequence[tuple[_K, _V]], *, what: str = "map keys") -> dict[_K, _V]:
    """``dict(pairs)``, after :func:`check_hash_collisions` on the keys (which see
    for errors). A key given twice keeps its last value, as with ``dict``."""
    if len(pairs) > _MOST_SHARING_ONE_HASH:  # spares small maps the list of keys
        check_hash_collisions(list(map(_first, pairs)), what)
    return dict(pairs)


def _unsteerable(values: Collection[Hashable]) -> bool:
    """Whether no two of *values* can share a hash unless by a 1 in 2**61 accident
    (or by being equal): a look at their types, and at the size of ints.

    Containers hold one type as a rule, so the first value says which look is
    worth taking; a wrong guess costs one pass in C, and the hash pass follows.
    """
    first = next(iter(values)).__class__
    # str.join and int.bit_length take subclasses too, which may hash as they like; a
    # serializer decodes to none but bool, which hashes as int does.
    try:
        if first is str:
            # The quickest loop in C that checks every value is a str.
            "".join(cast("Collection[str]", values))
            return True
        if first is int or first is bool:
            ints = cast("Collection[int]", values)
            return max(map(int.bit_length, ints)) <= _SELF_HASHING_BITS
    except TypeError:  # a value of another type
        return False
    return first in _UNSTEERABLE_TYPES and set(map(type, values)) <= _UNSTEERABLE_TYPES
