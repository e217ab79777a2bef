"""set_add across crashes: a caller that dies between any two of its steps, and
whose member is then added again (the redelivered chord member), counts once."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from petiole_memcached._sets import Sets
from petiole_memcached.results import MemcachedBackend
from petiole_memcached.testing import MemcachedServer

from petiole.testing import unique_name
from petiole.testing._helpers import run_concurrently


class Crash(Exception):
    """The caller died here."""


class CrashingServers:
    """The backend's servers, but the ``nth`` call of ``method`` dies before
    (``after=False``) or after (``after=True``) it reaches memcached."""

    def __init__(self, real: Any, method: str, nth: int, *, after: bool) -> None:
        self.real = real
        self.method = method
        self.nth = nth
        self.after = after
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if name != self.method:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self.nth and not self.after:
                raise Crash(f"before {name} #{self.nth}")
            result = attribute(*args, **kwargs)
            if self.calls == self.nth and self.after:
                raise Crash(f"after {name} #{self.nth}")
            return result

        return call


# Where a caller adding a new member to an existing set can die. Its calls are:
# gets(state), add(member), cas(state: count), set(member: counted), gets(state), cas(state: tidy).
CRASH_POINTS = {
    "before adding the member": ("add", 1, False),
    "after adding the member, before counting": ("add", 1, True),
    "after counting, before marking": ("cas", 1, True),
    "after marking, before tidying": ("set", 1, True),
    "after tidying": ("cas", 2, True),
}


@pytest.fixture
def backend(memcached_server: MemcachedServer) -> Iterator[MemcachedBackend]:
    backend = MemcachedBackend(memcached_server.url, {})
    yield backend
    backend.close()


@pytest.fixture
def key(backend: MemcachedBackend) -> Iterator[str]:
    name = unique_name("set")
    yield name
    backend.delete_keys([name])


def crashing(backend: MemcachedBackend, method: str, nth: int, *, after: bool) -> Sets:
    return Sets(CrashingServers(backend._servers, method, nth, after=after), backend.keys)  # type: ignore[arg-type]


def in_flight(backend: MemcachedBackend, key: str) -> list[str]:
    value = backend._servers.get(backend.keys.set(key), "test")
    assert value is not None
    return list(json.loads(value[1:])[2])


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_member_added_again_after_a_crash_is_counted_once(
    backend: MemcachedBackend, key: str, point: str
) -> None:
    method, nth, after = CRASH_POINTS[point]
    assert backend.set_add(key, "a", ttl_s=60) == 1

    with pytest.raises(Crash):
        crashing(backend, method, nth, after=after).add(key, "b", ttl_s=60)

    assert backend.set_add(key, "b", ttl_s=60) == 2  # the redelivery
    assert backend.set_add(key, "b", ttl_s=60) == 2
    assert backend.set_add(key, "c", ttl_s=60) == 3
    assert in_flight(backend, key) == [], "a counted member was left in flight"


def test_the_last_member_redelivered_after_a_crash_still_sees_the_set_complete(
    backend: MemcachedBackend, key: str
) -> None:
    backend.set_add(key, "a", ttl_s=60)
    # It counted the set full, then died before telling its chord.
    with pytest.raises(Crash):
        crashing(backend, "cas", 1, after=True).add(key, "b", ttl_s=60)

    assert backend.set_add(key, "b", ttl_s=60) == 2


def test_members_crashing_at_random_points_under_concurrency_are_each_counted_once(
    backend: MemcachedBackend, key: str
) -> None:
    threads, per_thread = 8, 25
    points = list(CRASH_POINTS.values())

    def add_members(worker: int) -> list[int]:
        chooser = random.Random(worker)
        sizes: list[int] = []
        for i in range(per_thread):
            member = f"{worker}-{i}"
            if chooser.random() < 0.5:
                method, nth, after = chooser.choice(points)
                with contextlib.suppress(Crash):
                    sizes.append(
                        crashing(backend, method, nth, after=after).add(key, member, ttl_s=60)
                    )
            sizes.append(backend.set_add(key, member, ttl_s=60))  # the (re)delivery
        return sizes

    sizes = run_concurrently([partial(add_members, w) for w in range(threads)], timeout_s=60)

    total = threads * per_thread
    assert max(size for of_one in sizes for size in of_one) == total
    assert backend.set_add(key, "one more", ttl_s=60) == total + 1
    assert in_flight(backend, key) == []


class InterleavingServers:
    """The backend's servers, but ``meanwhile`` runs just before the first ``cas``."""

    def __init__(self, real: Any, meanwhile: Callable[[], object]) -> None:
        self.real = real
        self.meanwhile: Callable[[], object] | None = meanwhile

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if name != "cas" or self.meanwhile is None:
            return attribute
        meanwhile, self.meanwhile = self.meanwhile, None
        meanwhile()
        return attribute


def test_duplicate_overtaken_by_a_whole_add_of_its_member_does_not_count_it_again(
    backend: MemcachedBackend, key: str
) -> None:
    """Two deliveries of one member: the first creates the member key, then,
    before it counts, the second counts it, marks it and tidies it away. The
    first must then see the mark, not count again."""
    overtaker: list[int] = []
    slow = Sets(
        InterleavingServers(
            backend._servers, lambda: overtaker.append(backend.set_add(key, "m", ttl_s=60))
        ),  # type: ignore[arg-type]
        backend.keys,
    )

    assert slow.add(key, "m", ttl_s=60) == 1
    assert overtaker == [1]
    assert backend.set_add(key, "n", ttl_s=60) == 2


def test_deleting_a_set_while_members_are_added_restarts_it_cleanly(
    backend: MemcachedBackend, key: str
) -> None:
    for member in "abc":
        backend.set_add(key, member, ttl_s=60)

    backend.delete_keys([key])

    # A new generation: old member keys no longer count as members.
    assert [backend.set_add(key, m, ttl_s=60) for m in "cab"] == [1, 2, 3]
