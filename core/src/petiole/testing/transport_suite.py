"""The transport conformance suite.

A transport plugin subclasses :class:`TransportSuite` in its own tests and
provides a ``transport`` fixture that yields a fresh, connected transport
(and closes it afterwards)::

    class TestRedisTransport(TransportSuite):
        @pytest.fixture
        def transport(self) -> Iterator[Transport]:
            t = create_transport("redis://localhost:6379/15", {})
            yield t
            t.close()

Every test works in queues with fresh unique names, so a shared server needs
no purge between runs; the suite purges what it used afterwards. Tests run for
everything the contract requires; only those tied to a capability the transport
declares it lacks (``TransportCapabilities``) are skipped, naming the capability.
Class attributes below tune timing and load for slow or remote servers.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import ClassVar

import pytest

from petiole.errors import MessageTooLarge, TransportError
from petiole.testing._helpers import Background, run_concurrently, unique_name, wait_until
from petiole.transport import (
    AcksWhileReserving,
    DeadLetter,
    DeadLetterAdmin,
    Delivery,
    PublishesInBatches,
    Transport,
    TransportCapabilities,
    ack_many,
)

# Every byte value, behind the envelope's magic: transports must not treat
# payloads as text, strip NULs or normalize line endings.
_BINARY_PAYLOAD = b"PET1" + bytes(range(256)) + b"\r\n\x00\r" + bytes(range(255, -1, -1))
_LONG_LEASE_S = 60.0
# A wait timed by the caller's own clock may end this much early (timer rounding).
_CLOCK_JITTER_S = 0.05


def _batching(transport: Transport) -> PublishesInBatches:
    """``transport`` as one that batches publishes; the test is skipped otherwise."""
    if not isinstance(transport, PublishesInBatches):
        pytest.skip(
            "the transport does not implement petiole.transport.PublishesInBatches: "
            "each publish waits for the broker"
        )
    return transport


def _acking_reserver(transport: Transport) -> AcksWhileReserving:
    """``transport`` as one that acknowledges in a reserve's request; the test is
    skipped otherwise."""
    if not isinstance(transport, AcksWhileReserving):
        pytest.skip(
            "the transport does not implement petiole.transport.AcksWhileReserving: "
            "acknowledgements go in requests of their own"
        )
    return transport


class TransportSuite:
    """Conformance tests for a :class:`~petiole.transport.Transport`.

    Subclasses provide a ``transport`` fixture and may override these attributes.
    """

    #: Lease used by tests that wait for a lease to end. Raised to
    #: ``capabilities.min_lease_s`` when the broker cannot honour it.
    lease_s: ClassVar[float] = 1.0
    #: Delay used by tests of delayed publish and delayed nack.
    delay_s: ClassVar[float] = 1.0
    #: Slack allowed around every timed event (a delay or lease ending, a wait
    #: running out). Brokers with whole-second timers set it to about 1.0.
    delay_precision_s: ClassVar[float] = 0.5
    #: How long a published message may take to become reservable (eventually
    #: consistent brokers). Reserve returns as soon as it is there, so a generous
    #: value costs nothing on a broker that is immediate.
    reserve_wait_s: ClassVar[float] = 5.0
    #: Load of the concurrency tests; lower them for slow remote servers.
    concurrency_threads: ClassVar[int] = 4
    concurrency_messages: ClassVar[int] = 200
    #: Upper bound on any one concurrency test, so a deadlock fails instead of hanging.
    concurrency_timeout_s: ClassVar[float] = 60.0
    #: Why :meth:`Transport.close` cannot cut short a reserve waiting in another
    #: thread (a client whose long poll in flight cannot be interrupted), or None.
    #: A reason skips that test by name; the transport's README must say so too.
    close_cannot_interrupt_reserve: ClassVar[str | None] = None

    # -- fixtures and helpers ------------------------------------------------

    @pytest.fixture
    def new_queue(self, transport: Transport) -> Iterator[Callable[[], str]]:
        """Makes unique queue names; purges those queues and their dead letters afterwards."""
        made: list[str] = []

        def make() -> str:
            name = unique_name("petiole-test")
            made.append(name)
            return name

        yield make
        for name in made:
            transport.purge(name)
            if isinstance(transport, DeadLetterAdmin):
                transport.purge_dead_letters(name)

    @pytest.fixture
    def queue(self, new_queue: Callable[[], str]) -> str:
        return new_queue()

    @pytest.fixture
    def peer_transport(self) -> Transport | Iterator[Transport]:
        """A second, independent connection to the same broker, standing in for
        another worker process. Override it to run the tests that use it."""
        pytest.skip(
            "suite fixture peer_transport is not provided: tests across two connections "
            "to the same broker do not run"
        )

    def effective_lease_s(self, transport: Transport) -> float:
        return max(self.lease_s, transport.capabilities.min_lease_s)

    def require_timed_leases(self, transport: Transport) -> None:
        if not transport.capabilities.leases_expire:
            pytest.skip(
                "capability leases_expire is False: leases are tied to the consumer's "
                "connection, so they do not end on a timer"
            )

    def require_delay(self, transport: Transport) -> None:
        limit = transport.capabilities.max_delay_s
        if limit is not None and limit < self.delay_s:
            pytest.skip(
                f"capability max_delay_s is {limit}: the broker cannot hold a "
                f"{self.delay_s} s delay natively (the core re-delays)"
            )

    def admin(self, transport: Transport) -> DeadLetterAdmin:
        """The transport as a dead-letter administrator, or skip: it is optional."""
        if not isinstance(transport, DeadLetterAdmin):
            pytest.skip(
                "the transport does not implement petiole.transport.DeadLetterAdmin: its "
                "broker administers dead letters with its own tools"
            )
        return transport

    def assert_no_dead_letters(self, transport: Transport, queue: str) -> None:
        """No dead letter in ``queue``, where the transport can tell."""
        if isinstance(transport, DeadLetterAdmin):
            assert transport.dead_letters(queue) == []

    def require_fifo(self, transport: Transport) -> None:
        if not transport.capabilities.fifo:
            pytest.skip("capability fifo is False: the transport does not claim FIFO order")

    def require_queue_preference(self, transport: Transport) -> None:
        if not transport.capabilities.queue_preference:
            pytest.skip(
                "capability queue_preference is False: reserve does not prefer queues in order"
            )

    def reserve_one(
        self, transport: Transport, queue: str, *, lease_s: float = _LONG_LEASE_S
    ) -> Delivery:
        """Reserve exactly one message, allowing ``reserve_wait_s`` for it to appear."""
        got = transport.reserve(
            [queue], max_messages=1, wait_s=self.reserve_wait_s, lease_s=lease_s
        )
        assert len(got) == 1, f"expected one message in {queue!r}, reserve returned {got!r}"
        return got[0]

    def assert_empty(self, transport: Transport, queue: str) -> None:
        got = transport.reserve([queue], max_messages=10, wait_s=0, lease_s=_LONG_LEASE_S)
        assert got == [], f"expected nothing reservable in {queue!r}, got {got!r}"

    def drain(
        self,
        transport: Transport,
        queues: Sequence[str],
        count: int,
        *,
        max_messages: int | None = None,
    ) -> list[Delivery]:
        """Reserve and ack until ``count`` messages came back (in reserve order)."""
        got: list[Delivery] = []
        deadline = time.monotonic() + self.reserve_wait_s + count * 0.05
        while len(got) < count and time.monotonic() < deadline:
            batch = transport.reserve(
                queues,
                max_messages=max_messages or count - len(got),
                wait_s=min(1.0, self.reserve_wait_s),
                lease_s=_LONG_LEASE_S,
            )
            for delivery in batch:
                transport.ack(delivery)
            got.extend(batch)
        assert len(got) == count, f"expected {count} messages, reserved {len(got)}"
        return got

    def expire_and_redeliver(self, transport: Transport, queue: str) -> tuple[Delivery, Delivery]:
        """Publish one message, let its first lease end, and take the second lease.

        Returns (stale first delivery, current second delivery); the second lease
        is long, so it is still held while the test uses the first receipt.
        """
        lease_s = self.effective_lease_s(transport)
        transport.publish(queue, b"leased")
        first = self.reserve_one(transport, queue, lease_s=lease_s)
        second = transport.reserve(
            [queue],
            max_messages=1,
            wait_s=lease_s + self.delay_precision_s + self.reserve_wait_s,
            lease_s=_LONG_LEASE_S,
        )
        assert len(second) == 1, "the message was not redelivered after its lease ended"
        return first, second[0]

    def reserve_when_due(self, transport: Transport, queue: str) -> list[Delivery]:
        """Reserve one message that becomes visible after ``delay_s`` (with slack)."""
        return transport.reserve(
            [queue],
            max_messages=1,
            wait_s=self.delay_s + self.delay_precision_s + self.reserve_wait_s,
            lease_s=_LONG_LEASE_S,
        )

    def assert_on_time(self, start: float) -> None:
        """The delay that began at ``start`` (monotonic) ended within its precision."""
        elapsed = time.monotonic() - start
        assert self.delay_s - self.delay_precision_s <= elapsed
        assert elapsed <= self.delay_s + self.delay_precision_s

    # -- the contract ----------------------------------------------------------

    def test_transport_satisfies_protocol(self, transport: Transport) -> None:
        assert isinstance(transport, Transport)
        assert isinstance(transport.capabilities, TransportCapabilities)

    def test_publish_reserve_ack_round_trip_preserves_payload_bytes(
        self, transport: Transport, queue: str
    ) -> None:
        lease_s = self.effective_lease_s(transport)
        transport.publish(queue, _BINARY_PAYLOAD, message_id="task-1")
        before = time.time()
        delivery = self.reserve_one(transport, queue, lease_s=lease_s)

        assert delivery.payload == _BINARY_PAYLOAD
        assert delivery.queue == queue
        assert delivery.delivery_count == 1
        assert delivery.receipt
        # Both fields default to "not reported"; when reported they must be right.
        assert delivery.message_id in ("", "task-1")
        if delivery.lease_expires_at:
            slack = self.delay_precision_s + 5.0  # clock skew with a remote server
            assert before + lease_s - slack <= delivery.lease_expires_at
            assert delivery.lease_expires_at <= time.time() + lease_s + slack
        transport.ack(delivery)
        assert transport.size(queue) == 0
        self.assert_empty(transport, queue)

    def test_ack_many_removes_every_message_it_is_given(
        self, transport: Transport, queue: str
    ) -> None:
        """``ack_many`` (the transport's own, or the core's one-by-one fallback)."""
        for index in range(5):
            transport.publish(queue, b"batch-%d" % index)
        held: list[Delivery] = []
        deadline = time.monotonic() + self.reserve_wait_s
        while len(held) < 5 and time.monotonic() < deadline:
            held += transport.reserve(
                [queue], max_messages=5 - len(held), wait_s=1.0, lease_s=_LONG_LEASE_S
            )
        assert len(held) == 5, f"reserved {len(held)} of 5 messages"

        ack_many(transport, [])
        ack_many(transport, held[:3])
        if transport.capabilities.counts_leased:
            assert transport.size(queue) == 2
        else:  # the two still held are not counted; given back, they are
            for delivery in held[3:]:
                transport.nack(delivery, requeue=True)
            assert transport.size(queue) == 2
            held[3:] = self.drain(transport, [queue], 2)  # drain acks them one by one
            assert sorted(d.payload for d in held[3:]) == [b"batch-3", b"batch-4"]
        ack_many(transport, held[3:])
        assert transport.size(queue) == 0
        self.assert_empty(transport, queue)

    def test_ack_and_reserve_acknowledges_then_hands_out_the_next(
        self, transport: Transport, queue: str
    ) -> None:
        reserver = _acking_reserver(transport)
        transport.publish(queue, b"first")
        first = self.reserve_one(transport, queue)
        transport.publish(queue, b"second")

        got = reserver.ack_and_reserve(
            [first], [queue], max_messages=1, wait_s=self.reserve_wait_s, lease_s=_LONG_LEASE_S
        )

        assert [d.payload for d in got] == [b"second"]
        transport.ack(got[0])
        assert transport.size(queue) == 0
        self.assert_empty(transport, queue)

    def test_ack_and_reserve_acknowledges_before_its_wait_ends(
        self, transport: Transport, queue: str
    ) -> None:
        """The acks take effect at once, not when the reserve returns: a worker
        waiting on an empty queue must not keep finished messages leased."""
        reserver = _acking_reserver(transport)
        if not transport.capabilities.counts_leased:
            pytest.skip("capability counts_leased is False: size() cannot see the ack land")
        transport.publish(queue, b"done")
        done = self.reserve_one(transport, queue)
        got: list[Delivery] = []
        waiter = threading.Thread(
            target=lambda: got.extend(
                reserver.ack_and_reserve(
                    [done], [queue], max_messages=1, wait_s=30.0, lease_s=_LONG_LEASE_S
                )
            ),
            daemon=True,
        )
        waiter.start()
        try:
            assert wait_until(lambda: transport.size(queue) == 0, timeout_s=10)
            assert waiter.is_alive()  # still waiting for a message
        finally:
            transport.publish(queue, b"wake")
            waiter.join(30)
        assert [d.payload for d in got] == [b"wake"]
        transport.ack(got[0])

    def test_ack_and_reserve_acknowledges_when_nothing_is_reserved(
        self, transport: Transport, queue: str
    ) -> None:
        reserver = _acking_reserver(transport)
        transport.publish(queue, b"only")
        only = self.reserve_one(transport, queue)

        got = reserver.ack_and_reserve(
            [only], [queue], max_messages=1, wait_s=0, lease_s=_LONG_LEASE_S
        )

        assert got == []
        assert transport.size(queue) == 0
        self.assert_empty(transport, queue)

    def test_acked_message_is_not_redelivered_after_its_lease(
        self, transport: Transport, queue: str
    ) -> None:
        self.require_timed_leases(transport)
        lease_s = self.effective_lease_s(transport)
        transport.publish(queue, b"done")
        transport.ack(self.reserve_one(transport, queue, lease_s=lease_s))

        got = transport.reserve(
            [queue], max_messages=1, wait_s=lease_s + self.delay_precision_s, lease_s=_LONG_LEASE_S
        )
        assert got == []

    def test_reserve_on_empty_queue_returns_empty_list_after_wait(
        self, transport: Transport, queue: str
    ) -> None:
        wait_s = 0.5
        start = time.monotonic()
        got = transport.reserve([queue], max_messages=1, wait_s=wait_s, lease_s=_LONG_LEASE_S)
        elapsed = time.monotonic() - start

        assert got == []
        assert wait_s - _CLOCK_JITTER_S <= elapsed <= wait_s + self.delay_precision_s

    def test_reserve_with_zero_wait_returns_at_once(self, transport: Transport, queue: str) -> None:
        start = time.monotonic()
        got = transport.reserve([queue], max_messages=1, wait_s=0, lease_s=_LONG_LEASE_S)

        assert got == []
        assert time.monotonic() - start <= self.delay_precision_s

    def test_reserve_returns_promptly_when_message_published_while_waiting(
        self, transport: Transport, queue: str
    ) -> None:
        wait_s = 10.0 + self.reserve_wait_s
        publisher = Background(lambda: transport.publish(queue, b"late"))

        publisher.release()
        got = transport.reserve([queue], max_messages=1, wait_s=wait_s, lease_s=_LONG_LEASE_S)
        returned_at = time.monotonic()
        publisher.join()

        assert [d.payload for d in got] == [b"late"]
        assert publisher.done_at is not None
        assert returned_at - publisher.done_at <= self.delay_precision_s

    def test_leased_message_is_hidden_from_other_reservers(
        self, transport: Transport, queue: str
    ) -> None:
        transport.publish(queue, b"mine")
        self.reserve_one(transport, queue)

        self.assert_empty(transport, queue)

    def test_nack_with_requeue_makes_message_available_again(
        self, transport: Transport, queue: str
    ) -> None:
        transport.publish(queue, b"again")
        transport.nack(self.reserve_one(transport, queue), requeue=True)

        again = self.reserve_one(transport, queue)
        assert again.payload == b"again"
        assert again.delivery_count == 2

    def test_nack_with_delay_keeps_message_invisible_until_due(
        self, transport: Transport, queue: str
    ) -> None:
        self.require_delay(transport)
        transport.publish(queue, b"later")
        delivery = self.reserve_one(transport, queue)

        start = time.monotonic()
        transport.nack(delivery, requeue=True, delay_s=self.delay_s)
        self.assert_empty(transport, queue)
        got = self.reserve_when_due(transport, queue)

        self.assert_on_time(start)
        assert [(d.payload, d.delivery_count) for d in got] == [(b"later", 2)]

    def test_delivery_count_survives_every_nack_with_delay(
        self, transport: Transport, queue: str
    ) -> None:
        """However a transport delays a returned message (in place, or as a copy in a
        delay queue), the count goes with it: the poison-message cap depends on it."""
        self.require_delay(transport)
        transport.publish(queue, b"returned twice")
        transport.nack(self.reserve_one(transport, queue), requeue=True, delay_s=self.delay_s)
        second = self.reserve_when_due(transport, queue)
        assert [d.delivery_count for d in second] == [2]
        transport.nack(second[0], requeue=True, delay_s=self.delay_s)
        third = self.reserve_when_due(transport, queue)

        assert [(d.payload, d.delivery_count) for d in third] == [(b"returned twice", 3)]

    def test_nack_without_requeue_drops_message(self, transport: Transport, queue: str) -> None:
        transport.publish(queue, b"drop me")
        transport.nack(self.reserve_one(transport, queue), requeue=False)

        assert transport.size(queue) == 0
        self.assert_empty(transport, queue)
        self.assert_no_dead_letters(transport, queue)

    def test_lease_expiry_redelivers_with_incremented_count(
        self, transport: Transport, queue: str
    ) -> None:
        self.require_timed_leases(transport)
        lease_s = self.effective_lease_s(transport)
        transport.publish(queue, b"crashy")
        start = time.monotonic()
        first = self.reserve_one(transport, queue, lease_s=lease_s)

        got = transport.reserve(
            [queue],
            max_messages=1,
            wait_s=lease_s + self.delay_precision_s + self.reserve_wait_s,
            lease_s=_LONG_LEASE_S,
        )
        elapsed = time.monotonic() - start

        assert [d.payload for d in got] == [b"crashy"]
        assert got[0].delivery_count == first.delivery_count + 1
        assert lease_s - self.delay_precision_s <= elapsed <= lease_s + self.delay_precision_s

    def test_extend_keeps_message_leased_past_its_original_lease(
        self, transport: Transport, queue: str
    ) -> None:
        self.require_timed_leases(transport)
        lease_s = self.effective_lease_s(transport)
        transport.publish(queue, b"long task")
        delivery = self.reserve_one(transport, queue, lease_s=lease_s)

        assert transport.extend(delivery, lease_s=lease_s * 4 + self.delay_precision_s * 2)
        got = transport.reserve(
            [queue], max_messages=1, wait_s=lease_s + self.delay_precision_s, lease_s=_LONG_LEASE_S
        )
        assert got == []
        # The receipt stays valid across an extension.
        transport.ack(delivery)
        assert transport.size(queue) == 0

    def test_extend_on_lost_lease_returns_false(self, transport: Transport, queue: str) -> None:
        self.require_timed_leases(transport)
        stale, current = self.expire_and_redeliver(transport, queue)

        assert transport.extend(stale, lease_s=_LONG_LEASE_S) is False
        assert transport.extend(current, lease_s=_LONG_LEASE_S) is True

    def test_extend_after_ack_returns_false(self, transport: Transport, queue: str) -> None:
        self.require_timed_leases(transport)
        transport.publish(queue, b"finished")
        delivery = self.reserve_one(transport, queue)
        transport.ack(delivery)

        assert transport.extend(delivery, lease_s=_LONG_LEASE_S) is False

    def test_extend_tells_whether_a_connection_bound_lease_is_still_held(
        self, transport: Transport, queue: str
    ) -> None:
        if transport.capabilities.leases_expire:
            pytest.skip("capability leases_expire is True: extend renews a timed lease")
        transport.publish(queue, b"held")
        delivery = self.reserve_one(transport, queue)

        assert transport.extend(delivery, lease_s=_LONG_LEASE_S) is True
        transport.ack(delivery)
        assert transport.extend(delivery, lease_s=_LONG_LEASE_S) is False

    @pytest.mark.parametrize(
        "operation", ["ack", "ack_many", "ack_and_reserve", "nack", "dead_letter"]
    )
    def test_stale_receipt_does_not_affect_newer_lease(
        self, transport: Transport, queue: str, operation: str
    ) -> None:
        self.require_timed_leases(transport)
        if operation == "ack_and_reserve":
            _acking_reserver(transport)  # skipped before waiting for a lease, if not offered
        stale, current = self.expire_and_redeliver(transport, queue)

        if operation == "ack":
            transport.ack(stale)
        elif operation == "ack_many":
            ack_many(transport, [stale])
        elif operation == "ack_and_reserve":
            got = _acking_reserver(transport).ack_and_reserve(
                [stale], [queue], max_messages=1, wait_s=0, lease_s=_LONG_LEASE_S
            )
            assert got == []  # the newer lease still hides the message
        elif operation == "nack":
            transport.nack(stale, requeue=True)
        else:
            transport.dead_letter(stale, reason="stale")

        assert transport.size(queue) == 1
        self.assert_no_dead_letters(transport, queue)
        self.assert_empty(transport, queue)  # the newer lease still hides it
        transport.ack(current)
        assert transport.size(queue) == 0

    def test_delayed_message_is_invisible_until_due(self, transport: Transport, queue: str) -> None:
        self.require_delay(transport)
        start = time.monotonic()
        transport.publish(queue, b"eta", delay_s=self.delay_s)

        self.assert_empty(transport, queue)
        got = self.reserve_when_due(transport, queue)

        self.assert_on_time(start)
        assert [(d.payload, d.delivery_count) for d in got] == [(b"eta", 1)]

    def test_due_message_is_reserved_before_later_delayed_ones(
        self, transport: Transport, queue: str
    ) -> None:
        self.require_delay(transport)
        transport.publish(queue, b"later", delay_s=_LONG_LEASE_S)
        transport.publish(queue, b"now")

        got = transport.reserve(
            [queue], max_messages=10, wait_s=self.reserve_wait_s, lease_s=_LONG_LEASE_S
        )
        assert [d.payload for d in got] == [b"now"]

    def test_priority_outside_zero_to_nine_is_clamped(
        self, transport: Transport, queue: str
    ) -> None:
        transport.publish(queue, b"low", priority=-5)
        transport.publish(queue, b"high", priority=42)

        got = [d.payload for d in self.drain(transport, [queue], 2, max_messages=1)]
        if transport.capabilities.priorities:
            assert got == [b"high", b"low"]
        else:
            assert sorted(got) == [b"high", b"low"]

    def test_close_wakes_a_reserve_waiting_in_another_thread(
        self, peer_transport: Transport, queue: str
    ) -> None:
        reason = self.close_cannot_interrupt_reserve
        if reason:
            pytest.skip(f"suite attribute close_cannot_interrupt_reserve: {reason}")
        closer = threading.Timer(0.2, peer_transport.close)
        started = time.monotonic()
        closer.start()
        try:
            got = peer_transport.reserve([queue], max_messages=1, wait_s=30, lease_s=_LONG_LEASE_S)
        except TransportError:
            got = []  # "closed" is an answer too; waiting out the 30 s is not
        finally:
            closer.join()
        assert got == []
        assert time.monotonic() - started < 5

    def test_higher_priority_is_reserved_first(self, transport: Transport, queue: str) -> None:
        if not transport.capabilities.priorities:
            pytest.skip("capability priorities is False: the transport ignores priority")
        published = [(0, b"p0-a"), (9, b"p9-a"), (5, b"p5"), (0, b"p0-b"), (9, b"p9-b"), (1, b"p1")]
        for priority, payload in published:
            transport.publish(queue, payload, priority=priority)

        got = [d.payload for d in self.drain(transport, [queue], len(published), max_messages=1)]
        priority_of = {payload: priority for priority, payload in published}
        assert [priority_of[p] for p in got] == [9, 9, 5, 1, 0, 0]
        if transport.capabilities.fifo:
            assert got == [b"p9-a", b"p9-b", b"p5", b"p1", b"p0-a", b"p0-b"]

    def test_equal_priority_messages_are_reserved_oldest_first(
        self, transport: Transport, queue: str
    ) -> None:
        self.require_fifo(transport)
        payloads = [f"m{i}".encode() for i in range(10)]
        for payload in payloads:
            transport.publish(queue, payload)

        assert [d.payload for d in self.drain(transport, [queue], len(payloads))] == payloads

    def test_a_copy_of_a_held_message_is_a_new_message(
        self, transport: Transport, queue: str
    ) -> None:
        """Its payload and id published again, then the held one acknowledged: the
        copy is reserved, delivered once (how a worker hands messages back)."""
        if transport.capabilities.deduplicates_copies:
            pytest.skip("capability deduplicates_copies: the broker may drop such a copy")
        transport.publish(queue, b"handed back", message_id="copy-1")
        held = self.reserve_one(transport, queue)
        transport.publish(queue, held.payload, message_id="copy-1")
        transport.ack(held)
        copy = self.reserve_one(transport, queue)
        assert (copy.payload, copy.delivery_count) == (b"handed back", 1)
        transport.ack(copy)
        self.assert_empty(transport, queue)

    def test_reserve_returns_at_most_max_messages(self, transport: Transport, queue: str) -> None:
        for i in range(5):
            transport.publish(queue, f"m{i}".encode())

        first = transport.reserve(
            [queue], max_messages=2, wait_s=self.reserve_wait_s, lease_s=_LONG_LEASE_S
        )
        assert 1 <= len(first) <= 2
        rest = self.drain(transport, [queue], 5 - len(first))
        assert sorted(d.payload for d in first + rest) == [f"m{i}".encode() for i in range(5)]

    def test_reserve_takes_from_several_queues_in_one_call(
        self, transport: Transport, new_queue: Callable[[], str]
    ) -> None:
        q1, q2 = new_queue(), new_queue()
        transport.publish(q1, b"one")
        transport.publish(q2, b"two")

        got = self.drain(transport, [q1, q2], 2)
        assert sorted((d.queue, d.payload) for d in got) == sorted([(q1, b"one"), (q2, b"two")])

    def test_receipts_are_unique_across_queues(
        self, transport: Transport, new_queue: Callable[[], str]
    ) -> None:
        # A worker files what it holds by receipt: two deliveries sharing one would
        # settle each other (the streams layout once did: ids unique per stream).
        # Published together, as a batch where the transport batches, so that ids
        # a broker derives from the clock come out equal if they can.
        q1, q2 = new_queue(), new_queue()
        count = 20
        batch = transport.batch() if isinstance(transport, PublishesInBatches) else None
        with batch if batch is not None else contextlib.nullcontext():
            for i in range(count):
                transport.publish(q1, f"one-{i}".encode())
                transport.publish(q2, f"two-{i}".encode())

        got = self.drain(transport, [q1, q2], 2 * count)
        assert len(got) == 2 * count
        assert len({d.receipt for d in got}) == len(got), sorted(d.receipt for d in got)

    def test_reserve_prefers_queues_in_the_order_given(
        self, transport: Transport, new_queue: Callable[[], str]
    ) -> None:
        self.require_queue_preference(transport)
        q1, q2 = new_queue(), new_queue()
        transport.publish(q1, b"one")
        transport.publish(q2, b"two")
        assert transport.size(q1) == transport.size(q2) == 1

        got = self.drain(transport, [q2, q1], 2, max_messages=1)
        assert [(d.queue, d.payload) for d in got] == [(q2, b"two"), (q1, b"one")]

    def test_dead_letter_moves_message_out_with_its_reason(
        self, transport: Transport, queue: str
    ) -> None:
        transport.publish(queue, _BINARY_PAYLOAD)
        delivery = self.reserve_one(transport, queue)
        before = time.time()
        transport.dead_letter(delivery, reason="ProtocolError: bad magic")

        assert transport.size(queue) == 0
        self.assert_empty(transport, queue)
        [dead] = self.admin(transport).dead_letters(queue)
        assert isinstance(dead, DeadLetter)
        assert dead.dead_letter_id
        assert dead.queue == queue
        assert dead.reason == "ProtocolError: bad magic"
        assert dead.delivery_count == 1
        assert dead.payload == _BINARY_PAYLOAD
        assert abs(dead.dead_at - before) < 60.0  # seconds since the epoch, not ms

    def test_dead_letters_lists_oldest_first_up_to_limit(
        self, transport: Transport, queue: str
    ) -> None:
        for i in range(3):
            transport.publish(queue, f"m{i}".encode())
            transport.dead_letter(self.reserve_one(transport, queue), reason=f"r{i}")

        listed = self.admin(transport).dead_letters(queue, limit=2)
        assert len(listed) == 2
        if transport.capabilities.fifo:
            assert [d.reason for d in listed] == ["r0", "r1"]
        assert len(self.admin(transport).dead_letters(queue)) == 3

    def test_dead_letters_are_kept_per_queue(
        self, transport: Transport, new_queue: Callable[[], str]
    ) -> None:
        q1, q2 = new_queue(), new_queue()
        transport.publish(q1, b"poison")
        transport.dead_letter(self.reserve_one(transport, q1), reason="poison")

        assert self.admin(transport).dead_letters(q2) == []
        assert len(self.admin(transport).dead_letters(q1)) == 1

    def test_receipt_of_a_dead_letter_does_not_match_its_requeued_copy(
        self, transport: Transport, queue: str
    ) -> None:
        admin = self.admin(transport)
        transport.publish(queue, b"poison")
        dead = self.reserve_one(transport, queue)
        transport.dead_letter(dead, reason="bad")
        admin.requeue_dead_letters(queue)
        again = self.reserve_one(transport, queue)

        transport.ack(dead)  # the old lease's receipt

        assert transport.size(queue) == (1 if transport.capabilities.counts_leased else 0)
        assert transport.extend(again, lease_s=_LONG_LEASE_S) is True
        transport.nack(again, requeue=True)
        assert transport.size(queue) == 1

    def test_requeue_dead_letters_puts_message_back_with_fresh_delivery_count(
        self, transport: Transport, queue: str
    ) -> None:
        transport.publish(queue, _BINARY_PAYLOAD)
        transport.nack(self.reserve_one(transport, queue), requeue=True)
        second = self.reserve_one(transport, queue)
        assert second.delivery_count == 2
        transport.dead_letter(second, reason="max deliveries")

        assert self.admin(transport).requeue_dead_letters(queue) == 1
        assert self.admin(transport).dead_letters(queue) == []
        again = self.reserve_one(transport, queue)
        assert again.payload == _BINARY_PAYLOAD
        assert again.delivery_count == 1

    def test_requeue_dead_letters_by_id_moves_only_those(
        self, transport: Transport, queue: str
    ) -> None:
        for payload in (b"keep", b"retry"):
            transport.publish(queue, payload)
            transport.dead_letter(self.reserve_one(transport, queue), reason=payload.decode())
        [retry_id] = [
            d.dead_letter_id
            for d in self.admin(transport).dead_letters(queue)
            if d.reason == "retry"
        ]

        assert self.admin(transport).requeue_dead_letters(queue, ["no-such-dead-letter"]) == 0
        assert self.admin(transport).requeue_dead_letters(queue, [retry_id]) == 1
        assert [d.reason for d in self.admin(transport).dead_letters(queue)] == ["keep"]
        assert self.reserve_one(transport, queue).payload == b"retry"

    def test_purge_dead_letters_empties_the_store(self, transport: Transport, queue: str) -> None:
        for i in range(2):
            transport.publish(queue, f"m{i}".encode())
            transport.dead_letter(self.reserve_one(transport, queue), reason="poison")

        assert self.admin(transport).purge_dead_letters(queue) == 2
        assert self.admin(transport).dead_letters(queue) == []
        assert self.admin(transport).purge_dead_letters(queue) == 0

    def test_size_counts_ready_and_delayed_messages(self, transport: Transport, queue: str) -> None:
        self.require_delay(transport)
        assert transport.size(queue) == 0
        transport.publish(queue, b"delayed", delay_s=_LONG_LEASE_S)
        transport.publish(queue, b"ready")

        assert transport.size(queue) == 2

    def test_size_counts_leased_messages_where_the_broker_does(
        self, transport: Transport, queue: str
    ) -> None:
        transport.publish(queue, b"leased")
        transport.publish(queue, b"ready")
        leased = self.reserve_one(transport, queue)

        expected = 2 if transport.capabilities.counts_leased else 1
        assert transport.size(queue) == expected
        transport.ack(leased)
        assert transport.size(queue) == 1

    def test_purge_deletes_ready_and_delayed_messages(
        self, transport: Transport, queue: str
    ) -> None:
        self.require_delay(transport)
        transport.publish(queue, b"delayed", delay_s=_LONG_LEASE_S)
        transport.publish(queue, b"ready")

        assert transport.purge(queue) == 2
        assert transport.size(queue) == 0
        self.assert_empty(transport, queue)
        assert transport.purge(queue) == 0

    def test_purge_of_a_leased_message_follows_counts_leased(
        self, transport: Transport, queue: str
    ) -> None:
        transport.publish(queue, b"leased")
        leased = self.reserve_one(transport, queue)

        if transport.capabilities.counts_leased:
            assert transport.purge(queue) == 1
            transport.ack(leased)  # a purged lease's receipt is stale: ignored
            assert transport.size(queue) == 0
        else:
            assert transport.purge(queue) == 0  # the broker purges only waiting messages
            transport.nack(leased, requeue=True)  # not acknowledged: it comes back
            assert self.reserve_one(transport, queue).payload == b"leased"
        self.assert_empty(transport, queue)

    def test_purge_leaves_other_queues_alone(
        self, transport: Transport, new_queue: Callable[[], str]
    ) -> None:
        q1, q2 = new_queue(), new_queue()
        transport.publish(q1, b"one")
        transport.publish(q2, b"two")

        assert transport.purge(q1) == 1
        assert transport.size(q2) == 1

    def test_concurrent_consumers_never_receive_the_same_message(
        self, transport: Transport, queue: str
    ) -> None:
        payloads = [f"message-{i}".encode() for i in range(self.concurrency_messages)]
        for i, payload in enumerate(payloads):
            transport.publish(queue, payload, message_id=f"task-{i}")
        received: list[Delivery] = []
        lock = threading.Lock()
        all_in = threading.Event()
        deadline = time.monotonic() + self.concurrency_timeout_s

        def consume(batch_size: int) -> None:
            while not all_in.is_set() and time.monotonic() < deadline:
                batch = transport.reserve(
                    [queue], max_messages=batch_size, wait_s=0.2, lease_s=_LONG_LEASE_S
                )
                with lock:
                    received.extend(batch)
                    if len(received) >= len(payloads):
                        all_in.set()
                for delivery in batch:
                    transport.ack(delivery)

        run_concurrently(
            [partial(consume, 1 + i % 3 * 2) for i in range(self.concurrency_threads)],
            timeout_s=self.concurrency_timeout_s + 10,
        )

        duplicates = [p for p, n in Counter(d.payload for d in received).items() if n > 1]
        assert duplicates == [], f"{len(duplicates)} messages were delivered twice"
        assert sorted(d.payload for d in received) == sorted(payloads)
        assert {d.delivery_count for d in received} == {1}
        assert transport.size(queue) == 0

    def test_message_published_on_one_connection_is_reserved_on_another(
        self, transport: Transport, peer_transport: Transport, queue: str
    ) -> None:
        transport.publish(queue, _BINARY_PAYLOAD)

        delivery = self.reserve_one(peer_transport, queue)
        assert delivery.payload == _BINARY_PAYLOAD
        peer_transport.ack(delivery)
        assert transport.size(queue) == 0

    def test_consumers_on_separate_connections_never_receive_the_same_message(
        self, transport: Transport, peer_transport: Transport, queue: str
    ) -> None:
        payloads = [f"message-{i}".encode() for i in range(self.concurrency_messages)]
        for payload in payloads:
            transport.publish(queue, payload)
        received: list[Delivery] = []
        lock = threading.Lock()
        all_in = threading.Event()
        deadline = time.monotonic() + self.concurrency_timeout_s

        def consume(consumer: Transport) -> None:
            while not all_in.is_set() and time.monotonic() < deadline:
                batch = consumer.reserve([queue], max_messages=3, wait_s=0.2, lease_s=_LONG_LEASE_S)
                with lock:
                    received.extend(batch)
                    if len(received) >= len(payloads):
                        all_in.set()
                for delivery in batch:
                    consumer.ack(delivery)

        consumers = [transport, peer_transport] * max(1, self.concurrency_threads // 2)
        run_concurrently(
            [partial(consume, c) for c in consumers],
            timeout_s=self.concurrency_timeout_s + 10,
        )

        assert sorted(d.payload for d in received) == sorted(payloads)
        assert {d.delivery_count for d in received} == {1}

    def test_concurrent_publishers_lose_nothing(self, transport: Transport, queue: str) -> None:
        threads = self.concurrency_threads
        per_thread = max(1, self.concurrency_messages // threads)

        def publish(worker: int) -> None:
            for i in range(per_thread):
                transport.publish(queue, f"w{worker}-m{i}".encode())

        run_concurrently(
            [partial(publish, w) for w in range(threads)],
            timeout_s=self.concurrency_timeout_s,
        )

        assert transport.size(queue) == threads * per_thread
        got = self.drain(transport, [queue], threads * per_thread)
        expected = {f"w{w}-m{i}".encode() for w in range(threads) for i in range(per_thread)}
        assert {d.payload for d in got} == expected

    def test_publish_over_max_message_bytes_raises_message_too_large(
        self, transport: Transport, queue: str
    ) -> None:
        limit = transport.capabilities.max_message_bytes
        if limit is None:
            pytest.skip("capability max_message_bytes is None: the transport has no size limit")

        with pytest.raises(MessageTooLarge) as info:
            transport.publish(queue, b"x" * (limit + 1))
        assert info.value.limit_bytes == limit
        assert info.value.size_bytes == limit + 1
        assert transport.size(queue) == 0

    def test_publish_at_max_message_bytes_is_accepted(
        self, transport: Transport, queue: str
    ) -> None:
        limit = transport.capabilities.max_message_bytes
        if limit is None:
            pytest.skip("capability max_message_bytes is None: the transport has no size limit")
        payload = bytes(range(256)) * (limit // 256) + b"x" * (limit % 256)

        transport.publish(queue, payload)
        assert self.reserve_one(transport, queue).payload == payload

    def test_publishes_of_a_batch_are_all_stored_when_the_block_ends(
        self, transport: Transport, queue: str
    ) -> None:
        batching = _batching(transport)
        payloads = [f"batched-{i}".encode() for i in range(50)]
        with batching.batch():
            for payload in payloads:
                transport.publish(queue, payload)

        assert transport.size(queue) == len(payloads)
        got = self.drain(transport, [queue], len(payloads))
        assert sorted(d.payload for d in got) == sorted(payloads)

    def test_a_batch_left_by_an_exception_still_stores_what_it_published(
        self, transport: Transport, queue: str
    ) -> None:
        # As publishes outside a block would have been: a publish that returned is
        # sent, whatever the code after it does (the PublishesInBatches contract).
        batching = _batching(transport)
        payloads = [f"before-the-error-{i}".encode() for i in range(5)]

        def publish_then_fail() -> None:
            with batching.batch():
                for payload in payloads:
                    transport.publish(queue, payload)
                raise LookupError("the caller's own error, after its publishes")

        with pytest.raises(LookupError):
            publish_then_fail()

        got = self.drain(transport, [queue], len(payloads))
        assert sorted(d.payload for d in got) == sorted(payloads)

    def test_close_twice_after_use_is_harmless(self, transport: Transport) -> None:
        queue = unique_name("petiole-test")
        transport.publish(queue, b"bye")
        transport.ack(self.reserve_one(transport, queue))
        assert transport.size(queue) == 0

        transport.close()
        transport.close()
