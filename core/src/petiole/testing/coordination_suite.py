"""The coordination conformance suite: sets, counters, claims, marks and leases.

A backend that implements :class:`~petiole.backend.Coordination` runs it
beside :class:`~petiole.testing.backend_suite.ResultBackendSuite`: a plugin
subclasses :class:`CoordinationSuite` and provides two fixtures, each yielding
a fresh, connected store (and closing it afterwards) — ``coordination``, and
``peer_coordination``, a second instance on the same server that plays another
process in the race tests::

    class TestRedisCoordination(CoordinationSuite):
        @pytest.fixture
        def coordination(self) -> Iterator[Coordination]:
            store = create_backend("redis://localhost:6379/15", {})
            yield store
            store.close()

        @pytest.fixture
        def peer_coordination(self) -> Iterator[Coordination]:
            ...  # the same, a second instance

Every test uses fresh unique keys and lease names, and deletes or releases what
it made. Class attributes below tune timing and load for slow or remote servers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from typing import ClassVar

import pytest

from petiole.backend import Coordination
from petiole.testing._helpers import run_concurrently, unique_name, wait_until

# Owners the lease tests use; the fixture releases their leases afterwards.
_OWNERS = ("owner-a", "owner-b")
# A lease ttl no test outlives.
_LONG_TTL_S = 60.0


class Keys:
    """Unique keys and lease names for one test; the suite deletes them afterwards."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.leases: list[str] = []

    def key(self) -> str:
        name = unique_name("petiole-test-key")
        self.keys.append(name)
        return name

    def lease(self) -> str:
        name = unique_name("petiole-test-lease")
        self.leases.append(name)
        return name


class CoordinationSuite:
    """Conformance tests for a :class:`~petiole.backend.Coordination` store.

    Subclasses provide ``coordination`` and ``peer_coordination`` fixtures and
    may override these attributes.
    """

    #: The short ttl of expiry tests; stores with whole-second expiry keep 1.0 or more.
    ttl_s: ClassVar[float] = 1.0
    #: How late past its ttl a set, counter, claim, mark or lease may still be visible.
    ttl_precision_s: ClassVar[float] = 1.0
    #: Load of the concurrency tests: threads, and operations per thread.
    concurrency_threads: ClassVar[int] = 8
    concurrency_per_thread: ClassVar[int] = 50
    #: Upper bound on any one concurrency test, so a deadlock fails instead of hanging.
    concurrency_timeout_s: ClassVar[float] = 60.0

    # -- fixtures --------------------------------------------------------------

    @pytest.fixture
    def names(self, coordination: Coordination) -> Iterator[Keys]:
        made = Keys()
        yield made
        if made.keys:
            coordination.delete_keys(made.keys)
        for lease in made.leases:
            for owner in _OWNERS:
                coordination.release_lease(lease, owner)

    # -- the contract ------------------------------------------------------------

    def test_store_satisfies_protocol(
        self, coordination: Coordination, peer_coordination: Coordination
    ) -> None:
        assert isinstance(coordination, Coordination)
        assert isinstance(peer_coordination, Coordination)
        assert peer_coordination is not coordination, "the peer must be a second instance"

    def test_set_add_counts_a_member_once(self, coordination: Coordination, names: Keys) -> None:
        key = names.key()

        assert coordination.set_add(key, "a", ttl_s=None) == 1
        assert coordination.set_add(key, "a", ttl_s=None) == 1
        assert coordination.set_add(key, "b", ttl_s=None) == 2
        assert coordination.set_add(names.key(), "a", ttl_s=None) == 1

    def test_set_add_is_atomic_under_concurrency(
        self, coordination: Coordination, names: Keys
    ) -> None:
        key = names.key()
        threads, per_thread = self.concurrency_threads, self.concurrency_per_thread

        def add_members(worker: int) -> list[int]:
            return [
                coordination.set_add(key, f"{worker}-{i}", ttl_s=None) for i in range(per_thread)
            ]

        sizes = run_concurrently(
            [partial(add_members, w) for w in range(threads)],
            timeout_s=self.concurrency_timeout_s,
        )

        seen = sorted(size for sizes_of_one in sizes for size in sizes_of_one)
        total = threads * per_thread
        assert seen.count(total) == 1, "not exactly one caller saw the set complete"
        assert seen == list(range(1, total + 1))

    def test_set_add_counts_members_added_concurrently_by_several_callers_once(
        self, coordination: Coordination, names: Keys
    ) -> None:
        key = names.key()
        members = [f"member-{i}" for i in range(self.concurrency_per_thread)]

        def add_all(offset: int) -> list[int]:
            rotated = members[offset:] + members[:offset]
            return [coordination.set_add(key, member, ttl_s=None) for member in rotated]

        sizes = run_concurrently(
            [partial(add_all, w * 7 % len(members)) for w in range(self.concurrency_threads)],
            timeout_s=self.concurrency_timeout_s,
        )

        assert max(size for sizes_of_one in sizes for size in sizes_of_one) == len(members)
        assert coordination.set_add(key, members[0], ttl_s=None) == len(members)

    def test_set_expires_after_its_ttl(self, coordination: Coordination, names: Keys) -> None:
        key = names.key()
        coordination.set_add(key, "a", ttl_s=self.ttl_s)
        assert coordination.set_add(key, "b", ttl_s=self.ttl_s) == 2

        # Every add renews the ttl, so the set cannot be polled: let the time pass.
        time.sleep(self.ttl_s + self.ttl_precision_s)
        assert coordination.set_add(key, "a", ttl_s=self.ttl_s) == 1, "the set never expired"

    def test_incr_starts_at_zero_and_adds_amount(
        self, coordination: Coordination, names: Keys
    ) -> None:
        key = names.key()

        assert coordination.incr(key, ttl_s=None) == 1
        assert coordination.incr(key, 5, ttl_s=None) == 6
        assert coordination.incr(key, -2, ttl_s=None) == 4
        assert coordination.incr(names.key(), 3, ttl_s=None) == 3

    def test_incr_is_atomic_under_concurrency(
        self, coordination: Coordination, names: Keys
    ) -> None:
        key = names.key()
        threads, per_thread = self.concurrency_threads, self.concurrency_per_thread

        def count() -> list[int]:
            return [coordination.incr(key, ttl_s=None) for _ in range(per_thread)]

        values = run_concurrently([count] * threads, timeout_s=self.concurrency_timeout_s)

        seen = sorted(value for values_of_one in values for value in values_of_one)
        assert seen == list(range(1, threads * per_thread + 1))

    def test_counter_expires_after_its_ttl(self, coordination: Coordination, names: Keys) -> None:
        key = names.key()
        coordination.incr(key, 10, ttl_s=self.ttl_s)

        # Every incr may renew the ttl, so the counter cannot be polled: let the time pass.
        time.sleep(self.ttl_s + self.ttl_precision_s)
        assert coordination.incr(key, ttl_s=self.ttl_s) == 1, "the counter never expired"

    def test_first_claim_wins_and_later_claims_see_the_winner(
        self, coordination: Coordination, names: Keys
    ) -> None:
        key = names.key()

        assert coordination.claim(key, "first", ttl_s=None) == "first"
        assert coordination.claim(key, "second", ttl_s=None) == "first"
        assert coordination.claim(key, "first", ttl_s=None) == "first"
        assert coordination.claim(names.key(), "second", ttl_s=None) == "second"

    def test_exactly_one_of_racing_claimers_wins(
        self, coordination: Coordination, names: Keys
    ) -> None:
        key = names.key()
        contenders = [f"owner-{i}" for i in range(self.concurrency_threads * 4)]

        owners = run_concurrently(
            [partial(coordination.claim, key, who, ttl_s=None) for who in contenders],
            timeout_s=self.concurrency_timeout_s,
        )

        assert len(set(owners)) == 1, "claimers disagree on who won"
        assert owners[0] in contenders

    def test_claim_expires_after_its_ttl(self, coordination: Coordination, names: Keys) -> None:
        key = names.key()
        coordination.claim(key, "old", ttl_s=self.ttl_s)

        assert wait_until(
            lambda: coordination.claim(key, "new", ttl_s=self.ttl_s) == "new",
            timeout_s=self.ttl_s + self.ttl_precision_s + 1.0,
        ), "the claim never expired"

    def test_delete_keys_removes_sets_counters_and_claims(
        self, coordination: Coordination, names: Keys
    ) -> None:
        set_key, counter_key, claim_key = names.key(), names.key(), names.key()
        coordination.set_add(set_key, "a", ttl_s=None)
        coordination.set_add(set_key, "b", ttl_s=None)
        coordination.incr(counter_key, 5, ttl_s=None)
        coordination.claim(claim_key, "old", ttl_s=None)

        coordination.delete_keys([set_key, counter_key, claim_key, names.key()])

        assert coordination.set_add(set_key, "a", ttl_s=None) == 1
        assert coordination.incr(counter_key, ttl_s=None) == 1
        assert coordination.claim(claim_key, "new", ttl_s=None) == "new"

    def test_put_mark_then_get_marks_reads_it(
        self, coordination: Coordination, names: Keys
    ) -> None:
        first, second, unknown = names.key(), names.key(), names.key()
        coordination.put_mark(first, "one", ttl_s=None)
        coordination.put_mark(second, "two ✓", ttl_s=None)

        assert coordination.get_marks([first, unknown, second]) == {first: "one", second: "two ✓"}
        assert coordination.get_marks([]) == {}

    def test_put_mark_replaces_the_earlier_value(
        self, coordination: Coordination, names: Keys
    ) -> None:
        key = names.key()
        coordination.put_mark(key, "old", ttl_s=None)
        coordination.put_mark(key, "new", ttl_s=None)

        assert coordination.get_marks([key]) == {key: "new"}

    def test_mark_expires_after_its_ttl(self, coordination: Coordination, names: Keys) -> None:
        key, kept = names.key(), names.key()
        coordination.put_mark(key, "soon gone", ttl_s=self.ttl_s)
        coordination.put_mark(kept, "kept", ttl_s=None)

        assert wait_until(
            lambda: key not in coordination.get_marks([key]),
            timeout_s=self.ttl_s + self.ttl_precision_s,
        ), "the mark never expired"
        assert coordination.get_marks([key, kept]) == {kept: "kept"}

    def test_delete_keys_removes_marks(self, coordination: Coordination, names: Keys) -> None:
        key = names.key()
        coordination.put_mark(key, "here", ttl_s=None)

        coordination.delete_keys([key])

        assert coordination.get_marks([key]) == {}

    # -- the leader lease ---------------------------------------------------------

    def test_acquire_a_free_lease_succeeds(self, coordination: Coordination, names: Keys) -> None:
        assert coordination.acquire_lease(names.lease(), "owner-a", _LONG_TTL_S) is True

    def test_acquire_a_lease_held_by_another_owner_fails(
        self, coordination: Coordination, peer_coordination: Coordination, names: Keys
    ) -> None:
        lease = names.lease()
        assert coordination.acquire_lease(lease, "owner-a", _LONG_TTL_S)

        assert peer_coordination.acquire_lease(lease, "owner-b", _LONG_TTL_S) is False
        assert coordination.acquire_lease(lease, "owner-b", _LONG_TTL_S) is False
        assert peer_coordination.renew_lease(lease, "owner-a", _LONG_TTL_S) is True

    def test_acquiring_again_by_the_holder_renews_the_lease(
        self, coordination: Coordination, peer_coordination: Coordination, names: Keys
    ) -> None:
        lease = names.lease()
        assert coordination.acquire_lease(lease, "owner-a", self.ttl_s)
        assert coordination.acquire_lease(lease, "owner-a", _LONG_TTL_S) is True

        # Nothing to poll for: the renewed lease must simply outlive its first ttl.
        time.sleep(self.ttl_s + self.ttl_precision_s)
        assert peer_coordination.acquire_lease(lease, "owner-b", _LONG_TTL_S) is False

    def test_renewing_extends_the_lease_past_its_first_ttl(
        self, coordination: Coordination, peer_coordination: Coordination, names: Keys
    ) -> None:
        lease = names.lease()
        assert coordination.acquire_lease(lease, "owner-a", self.ttl_s)
        assert coordination.renew_lease(lease, "owner-a", _LONG_TTL_S) is True

        time.sleep(self.ttl_s + self.ttl_precision_s)
        assert peer_coordination.acquire_lease(lease, "owner-b", _LONG_TTL_S) is False

    def test_an_expired_lease_can_be_acquired_by_another_owner(
        self, coordination: Coordination, peer_coordination: Coordination, names: Keys
    ) -> None:
        lease = names.lease()
        assert coordination.acquire_lease(lease, "owner-a", self.ttl_s)

        assert wait_until(
            lambda: peer_coordination.acquire_lease(lease, "owner-b", _LONG_TTL_S),
            timeout_s=self.ttl_s + self.ttl_precision_s + 1.0,
            interval_s=0.05,
        ), "the lease never expired"
        assert coordination.renew_lease(lease, "owner-a", _LONG_TTL_S) is False
        assert coordination.release_lease(lease, "owner-a") is False
        assert peer_coordination.renew_lease(lease, "owner-b", _LONG_TTL_S) is True

    def test_renew_by_a_non_holder_fails(
        self, coordination: Coordination, peer_coordination: Coordination, names: Keys
    ) -> None:
        held, free = names.lease(), names.lease()
        assert coordination.acquire_lease(held, "owner-a", _LONG_TTL_S)

        assert peer_coordination.renew_lease(held, "owner-b", _LONG_TTL_S) is False
        assert peer_coordination.renew_lease(free, "owner-b", _LONG_TTL_S) is False
        # Renewing a free lease does not take it.
        assert coordination.acquire_lease(free, "owner-a", _LONG_TTL_S) is True

    def test_release_by_a_non_holder_fails_and_keeps_the_holder(
        self, coordination: Coordination, peer_coordination: Coordination, names: Keys
    ) -> None:
        lease = names.lease()
        assert coordination.acquire_lease(lease, "owner-a", _LONG_TTL_S)

        assert peer_coordination.release_lease(lease, "owner-b") is False
        assert peer_coordination.acquire_lease(lease, "owner-b", _LONG_TTL_S) is False
        assert peer_coordination.release_lease(names.lease(), "owner-b") is False

    def test_released_lease_can_be_acquired_by_another_owner(
        self, coordination: Coordination, peer_coordination: Coordination, names: Keys
    ) -> None:
        lease = names.lease()
        assert coordination.acquire_lease(lease, "owner-a", _LONG_TTL_S)

        assert coordination.release_lease(lease, "owner-a") is True
        assert coordination.release_lease(lease, "owner-a") is False
        assert coordination.renew_lease(lease, "owner-a", _LONG_TTL_S) is False
        assert peer_coordination.acquire_lease(lease, "owner-b", _LONG_TTL_S) is True

    def test_lease_names_are_apart_from_claims_and_marks(
        self, coordination: Coordination, names: Keys
    ) -> None:
        shared = unique_name("petiole-test-shared")
        names.keys.append(shared)
        names.leases.append(shared)
        assert coordination.claim(shared, "claimer", ttl_s=_LONG_TTL_S) == "claimer"

        assert coordination.acquire_lease(shared, "owner-a", _LONG_TTL_S) is True
        coordination.delete_keys([shared])
        assert coordination.renew_lease(shared, "owner-a", _LONG_TTL_S) is True

    def test_exactly_one_of_racing_acquirers_wins(
        self, coordination: Coordination, peer_coordination: Coordination, names: Keys
    ) -> None:
        lease = names.lease()
        contenders = [f"racer-{i}" for i in range(self.concurrency_threads * 2)]
        stores = [coordination, peer_coordination]

        won = run_concurrently(
            [
                partial(stores[i % 2].acquire_lease, lease, who, _LONG_TTL_S)
                for i, who in enumerate(contenders)
            ],
            timeout_s=self.concurrency_timeout_s,
        )

        winners = [who for who, ok in zip(contenders, won, strict=True) if ok]
        assert len(winners) == 1, f"{len(winners)} acquirers won: {winners}"
        assert coordination.release_lease(lease, winners[0]) is True
