"""The push-consumption conformance suite.

A transport that implements :class:`~petiole.transport.Consuming` subclasses
:class:`ConsumeSuite` in its tests, with the same ``transport`` fixture as
:class:`~petiole.testing.TransportSuite`::

    class TestAmqpConsume(ConsumeSuite):
        @pytest.fixture
        def transport(self) -> Iterator[Transport]:
            t = create_transport("amqp://127.0.0.1:5672//", {})
            yield t
            t.close()

For a transport without ``consume`` the suite skips, naming the protocol. The
tests check what the worker relies on: deliveries arrive on the transport's
thread with their bytes intact; no more than ``prefetch`` are unsettled, and
the rest stay in the broker where another consumer can take them (no hidden
buffer); settling from any thread frees the window; a callback that raises
loses nothing; a closed consumer gets nothing more. Waits end as soon as what
they wait for has happened; ``delivery_wait_s`` only bounds them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from petiole.testing._helpers import unique_name
from petiole.transport import Consumer, Consuming, DeadLetterAdmin, Delivery, Transport

_LONG_LEASE_S = 60.0


class Received:
    """An ``on_delivery`` callback that records deliveries and waits for them."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self._condition = threading.Condition()
        self._deliveries: list[Delivery] = []
        self.threads: set[int] = set()
        self.concurrent = 0
        self.most_concurrent = 0
        self._fail_first = fail_first

    def __call__(self, delivery: Delivery) -> None:
        with self._condition:
            self.concurrent += 1
            self.most_concurrent = max(self.most_concurrent, self.concurrent)
            self.threads.add(threading.get_ident())
        try:
            with self._condition:
                if self._fail_first > 0:
                    self._fail_first -= 1
                    raise RuntimeError("a callback that fails (on purpose, in a test)")
                self._deliveries.append(delivery)
                self._condition.notify_all()
        finally:
            with self._condition:
                self.concurrent -= 1

    @property
    def deliveries(self) -> list[Delivery]:
        with self._condition:
            return list(self._deliveries)

    def wait_for(self, count: int, *, timeout_s: float) -> list[Delivery]:
        """The deliveries once there are ``count``, or whatever came by the deadline."""
        with self._condition:
            self._condition.wait_for(lambda: len(self._deliveries) >= count, timeout_s)
            return list(self._deliveries)


class ConsumeSuite:
    """Conformance tests for a :class:`~petiole.transport.Consuming` transport.

    Subclasses provide a ``transport`` fixture and may override these attributes.
    """

    #: The longest a published message may take to reach a consumer.
    delivery_wait_s: ClassVar[float] = 10.0
    #: Lease of the test where an unsettled delivery's lease runs out.
    lease_s: ClassVar[float] = 1.0
    #: Slack around a lease ending (brokers with whole-second timers: about 1.0).
    delay_precision_s: ClassVar[float] = 0.5
    #: Messages shared by two consumers in the test of no duplicates.
    shared_messages: ClassVar[int] = 200

    # -- fixtures and helpers ------------------------------------------------

    @pytest.fixture
    def consuming(self, transport: Transport) -> Consuming:
        if not isinstance(transport, Consuming):
            pytest.skip(
                "the transport does not implement petiole.transport.Consuming: workers "
                "reserve from it instead"
            )
        return transport

    @pytest.fixture
    def queue(self, transport: Transport) -> Iterator[str]:
        name = unique_name("petiole-test")
        yield name
        transport.purge(name)
        if isinstance(transport, DeadLetterAdmin):
            transport.purge_dead_letters(name)

    @pytest.fixture
    def consume(
        self, consuming: Consuming
    ) -> Iterator[Callable[[str, int, Callable[[Delivery], None]], Consumer]]:
        """``consume(queue, prefetch, on_delivery)``; closes every consumer afterwards."""
        made: list[Consumer] = []

        def make(queue: str, prefetch: int, on_delivery: Callable[[Delivery], None]) -> Consumer:
            consumer = consuming.consume(
                [queue], prefetch=prefetch, lease_s=_LONG_LEASE_S, on_delivery=on_delivery
            )
            made.append(consumer)
            return consumer

        yield make
        for consumer in made:
            consumer.close()

    def reserve_rest(self, transport: Transport, queue: str, count: int) -> list[Delivery]:
        """Reserve until ``count`` messages came (or the wait ran out), without acking."""
        got: list[Delivery] = []
        while len(got) < count:
            batch = transport.reserve(
                [queue],
                max_messages=count - len(got),
                wait_s=self.delivery_wait_s,
                lease_s=_LONG_LEASE_S,
            )
            if not batch:
                break
            got.extend(batch)
        return got

    # -- the contract ----------------------------------------------------------

    def test_consume_delivers_each_message_with_its_bytes_and_count_one(
        self, consume: Callable[..., Consumer], queue: str, transport: Transport
    ) -> None:
        payloads = [b"PET1" + bytes(range(256)), b"second\x00\r\n"]
        transport.publish(queue, payloads[0], message_id="id-1")
        received = Received()
        consume(queue, 10, received)
        transport.publish(queue, payloads[1], message_id="id-2")

        got = received.wait_for(2, timeout_s=self.delivery_wait_s)

        assert sorted(d.payload for d in got) == sorted(payloads)
        assert {d.queue for d in got} == {queue}
        assert [d.delivery_count for d in got] == [1, 1]
        assert threading.get_ident() not in received.threads

    def test_no_more_than_prefetch_are_held_and_the_rest_stay_in_the_broker(
        self, consume: Callable[..., Consumer], queue: str, transport: Transport
    ) -> None:
        for i in range(5):
            transport.publish(queue, b"m%d" % i)
        received = Received()
        consume(queue, 2, received)
        assert len(received.wait_for(2, timeout_s=self.delivery_wait_s)) == 2

        # The other three wait in the broker, where another consumer can take them.
        rest = self.reserve_rest(transport, queue, 3)

        assert len(rest) == 3
        assert len(received.deliveries) == 2
        assert {d.payload for d in received.deliveries + rest} == {b"m%d" % i for i in range(5)}

    def test_settling_from_another_thread_lets_the_next_message_come(
        self, consume: Callable[..., Consumer], queue: str, transport: Transport
    ) -> None:
        transport.publish(queue, b"first")
        received = Received()
        consume(queue, 1, received)
        (first,) = received.wait_for(1, timeout_s=self.delivery_wait_s)
        transport.publish(queue, b"second")

        settler = threading.Thread(target=transport.ack, args=(first,))
        settler.start()
        settler.join()
        got = received.wait_for(2, timeout_s=self.delivery_wait_s)

        assert [d.payload for d in got] == [b"first", b"second"]
        assert transport.extend(first, lease_s=_LONG_LEASE_S) is False  # acknowledged

    def test_nack_with_requeue_delivers_it_again_with_count_two(
        self, consume: Callable[..., Consumer], queue: str, transport: Transport
    ) -> None:
        transport.publish(queue, b"again")
        received = Received()
        consume(queue, 1, received)
        (first,) = received.wait_for(1, timeout_s=self.delivery_wait_s)

        transport.nack(first, requeue=True)
        got = received.wait_for(2, timeout_s=self.delivery_wait_s)

        assert [(d.payload, d.delivery_count) for d in got] == [(b"again", 1), (b"again", 2)]

    def test_dead_letter_of_a_pushed_delivery_frees_its_place(
        self, consume: Callable[..., Consumer], queue: str, transport: Transport
    ) -> None:
        transport.publish(queue, b"poison")
        transport.publish(queue, b"good")
        received = Received()
        consume(queue, 1, received)
        (first,) = received.wait_for(1, timeout_s=self.delivery_wait_s)

        transport.dead_letter(first, reason="a test dead-lettered it")
        got = received.wait_for(2, timeout_s=self.delivery_wait_s)

        assert [d.payload for d in got] == [b"poison", b"good"]
        if isinstance(transport, DeadLetterAdmin):
            letters = transport.dead_letters(queue)
            assert [(d.payload, d.reason) for d in letters] == [
                (b"poison", "a test dead-lettered it")
            ]

    def test_a_callback_that_raises_loses_nothing(
        self, consume: Callable[..., Consumer], queue: str, transport: Transport
    ) -> None:
        transport.publish(queue, b"kept")
        received = Received(fail_first=1)

        consume(queue, 1, received)
        got = received.wait_for(1, timeout_s=self.delivery_wait_s)

        assert [(d.payload, d.delivery_count) for d in got] == [(b"kept", 2)]

    def test_a_lease_that_runs_out_frees_its_place(
        self, consuming: Consuming, queue: str, transport: Transport
    ) -> None:
        if not transport.capabilities.leases_expire:
            pytest.skip(
                "capability leases_expire is False: a delivery stays the consumer's for "
                "as long as its connection lives"
            )
        lease_s = max(self.lease_s, transport.capabilities.min_lease_s)
        transport.publish(queue, b"forgotten")
        received = Received()
        consumer = consuming.consume([queue], prefetch=1, lease_s=lease_s, on_delivery=received)
        try:
            got = received.wait_for(
                2, timeout_s=lease_s + self.delay_precision_s + self.delivery_wait_s
            )
        finally:
            consumer.close()

        assert [(d.payload, d.delivery_count) for d in got] == [
            (b"forgotten", 1),
            (b"forgotten", 2),
        ]

    def test_callbacks_of_a_consumer_run_one_at_a_time(
        self, consume: Callable[..., Consumer], queue: str, transport: Transport
    ) -> None:
        for i in range(20):
            transport.publish(queue, b"m%d" % i)
        received = Received()

        consume(queue, 20, received)

        assert len(received.wait_for(20, timeout_s=self.delivery_wait_s)) == 20
        assert received.most_concurrent == 1

    def test_a_closed_consumer_receives_nothing_more(
        self, consume: Callable[..., Consumer], queue: str, transport: Transport
    ) -> None:
        received = Received()
        consumer = consume(queue, 5, received)
        transport.publish(queue, b"before")
        assert len(received.wait_for(1, timeout_s=self.delivery_wait_s)) == 1

        consumer.close()
        consumer.close()  # twice is harmless
        transport.publish(queue, b"after")

        # The message waits in the broker for someone else, not for the closed consumer.
        assert [d.payload for d in self.reserve_rest(transport, queue, 1)] == [b"after"]
        assert [d.payload for d in received.deliveries] == [b"before"]

    def test_two_consumers_never_receive_the_same_message(
        self, consuming: Consuming, queue: str, transport: Transport
    ) -> None:
        count = self.shared_messages
        received = Received()  # both consumers record into one, each on its own thread
        consumers = [
            consuming.consume([queue], prefetch=count, lease_s=_LONG_LEASE_S, on_delivery=received)
            for _ in range(2)
        ]
        try:
            for i in range(count):
                transport.publish(queue, b"%d" % i)
            got = received.wait_for(count, timeout_s=self.delivery_wait_s)
        finally:
            for consumer in consumers:
                consumer.close()

        assert sorted(d.payload for d in got) == sorted(b"%d" % i for i in range(count))

    def test_consume_refuses_a_string_no_queue_and_a_prefetch_below_one(
        self, consuming: Consuming, queue: str
    ) -> None:
        def ignore(delivery: Delivery) -> None:
            raise AssertionError("nothing should be delivered")

        with pytest.raises(TypeError, match="not the string"):
            consuming.consume(queue, prefetch=1, lease_s=_LONG_LEASE_S, on_delivery=ignore)
        with pytest.raises(ValueError, match="queue"):
            consuming.consume([], prefetch=1, lease_s=_LONG_LEASE_S, on_delivery=ignore)
        with pytest.raises(ValueError, match="prefetch"):
            consuming.consume([queue], prefetch=0, lease_s=_LONG_LEASE_S, on_delivery=ignore)
