"""The broadcast conformance suite.

A transport that implements :class:`~petiole.transport.Broadcast` subclasses
:class:`BroadcastSuite` in its tests, with the same ``transport`` fixture as
:class:`~petiole.testing.TransportSuite` (and ``peer_transport``, a second
connection to the same broker, to run the tests across connections)::

    class TestRedisBroadcast(BroadcastSuite):
        @pytest.fixture
        def transport(self) -> Iterator[Transport]:
            t = create_transport("redis://localhost:6379/15", {})
            yield t
            t.close()

Every test uses channels with fresh unique names. For a transport without
``Broadcast`` the whole suite skips, naming the capability, except the test
that the ``broadcast`` capability flag agrees with the protocol. Waits end as
soon as what they wait for has happened; ``delivery_wait_s`` only bounds them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar

import pytest

from petiole.testing._helpers import call_with_timeout, unique_name
from petiole.transport import Broadcast, Subscription, Transport

# Every byte value, NULs and line endings included.
_BINARY_PAYLOAD = bytes(range(256)) + b"\r\n\x00\r" + bytes(range(255, -1, -1))
_LARGE_PAYLOAD_BYTES = 64 * 1024

OnMessage = Callable[[str, bytes], None]


class Inbox:
    """A callback that records what it receives, and waits for it with a deadline."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._received: list[tuple[str, bytes]] = []
        self.threads: set[int] = set()

    def __call__(self, channel: str, payload: bytes) -> None:
        with self._condition:
            self._received.append((channel, payload))
            self.threads.add(threading.get_ident())
            self._condition.notify_all()

    @property
    def received(self) -> list[tuple[str, bytes]]:
        with self._condition:
            return list(self._received)

    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.received]

    def wait_for(self, count: int, *, timeout_s: float) -> list[tuple[str, bytes]]:
        """What was received once there are ``count`` messages, or at the deadline."""
        with self._condition:
            self._condition.wait_for(lambda: len(self._received) >= count, timeout_s)
            return list(self._received)


class BroadcastSuite:
    """Conformance tests for a :class:`~petiole.transport.Broadcast` transport.

    Subclasses provide a ``transport`` fixture (and optionally ``peer_transport``)
    and may override these attributes.
    """

    #: The longest a broadcast may take to reach a subscriber (a polling
    #: transport's interval, a remote server). Waits end as soon as it arrives.
    delivery_wait_s: ClassVar[float] = 10.0
    #: Messages in the test of many messages in a row.
    many_messages: ClassVar[int] = 1000

    # -- fixtures and helpers ------------------------------------------------

    @pytest.fixture
    def peer_transport(self) -> Transport | Iterator[Transport]:
        """A second, independent connection to the same broker, standing in for
        another process. Override it to run the tests that use it."""
        pytest.skip(
            "suite fixture peer_transport is not provided: tests across two connections "
            "to the same broker do not run"
        )

    @pytest.fixture
    def broadcaster(self, transport: Transport) -> Broadcast:
        return self.require_broadcast(transport)

    @pytest.fixture
    def peer_broadcaster(self, peer_transport: Transport) -> Broadcast:
        return self.require_broadcast(peer_transport)

    @pytest.fixture
    def subscribe(
        self, transport: Transport
    ) -> Iterator[Callable[[Broadcast, Sequence[str], OnMessage], Subscription]]:
        """``subscribe(broadcaster, channels, on_message)``; closes them all afterwards."""
        made: list[Subscription] = []

        def make(on: Broadcast, channels: Sequence[str], on_message: OnMessage) -> Subscription:
            subscription = call_with_timeout(
                lambda: on.subscribe(channels, on_message),
                timeout_s=self.delivery_wait_s,
                what="subscribe",
            )
            made.append(subscription)
            return subscription

        yield make
        for subscription in made:
            self.close(subscription)

    @pytest.fixture
    def channel(self) -> str:
        return unique_name("petiole-test")

    def require_broadcast(self, transport: Transport) -> Broadcast:
        if not isinstance(transport, Broadcast):
            pytest.skip(
                "capability broadcast: the transport does not implement "
                "petiole.transport.Broadcast (remote control falls back to per-worker "
                "control queues)"
            )
        return transport

    def close(self, subscription: Subscription) -> None:
        call_with_timeout(subscription.close, timeout_s=self.delivery_wait_s, what="close")

    def assert_count(self, reached: int, expected: int) -> None:
        """``broadcast`` returns the subscriptions reached, or -1 when it cannot tell."""
        assert reached in (expected, -1), f"broadcast reached {reached}, expected {expected}"

    # -- the contract ----------------------------------------------------------

    def test_broadcast_capability_flag_agrees_with_protocol(self, transport: Transport) -> None:
        implements = isinstance(transport, Broadcast)
        assert transport.capabilities.broadcast is implements, (
            f"capabilities.broadcast is {transport.capabilities.broadcast}, but the "
            f"transport {'implements' if implements else 'does not implement'} Broadcast"
        )

    def test_broadcast_reaches_every_subscription(
        self, broadcaster: Broadcast, subscribe: Callable[..., Subscription], channel: str
    ) -> None:
        first, second = Inbox(), Inbox()
        subscribe(broadcaster, [channel], first)
        subscribe(broadcaster, [channel], second)

        self.assert_count(broadcaster.broadcast(channel, b"hello"), 2)

        for inbox in (first, second):
            assert inbox.wait_for(1, timeout_s=self.delivery_wait_s) == [(channel, b"hello")]

    def test_broadcast_with_no_subscriber_reaches_nobody(
        self, broadcaster: Broadcast, channel: str
    ) -> None:
        self.assert_count(broadcaster.broadcast(channel, b"into the void"), 0)

    def test_broadcast_reaches_a_subscriber_on_another_connection(
        self,
        broadcaster: Broadcast,
        peer_broadcaster: Broadcast,
        subscribe: Callable[..., Subscription],
        channel: str,
    ) -> None:
        here, there = Inbox(), Inbox()
        subscribe(broadcaster, [channel], here)
        subscribe(peer_broadcaster, [channel], there)

        self.assert_count(broadcaster.broadcast(channel, b"from here"), 2)
        self.assert_count(peer_broadcaster.broadcast(channel, b"from there"), 2)

        expected = [(channel, b"from here"), (channel, b"from there")]
        for inbox in (here, there):
            assert inbox.wait_for(2, timeout_s=self.delivery_wait_s) == expected

    def test_subscription_is_live_when_subscribe_returns(
        self,
        broadcaster: Broadcast,
        peer_broadcaster: Broadcast,
        subscribe: Callable[..., Subscription],
    ) -> None:
        """Broadcast from another connection the moment subscribe returns, many times."""
        for round_ in range(20):
            channel = unique_name("petiole-test")
            inbox = Inbox()
            subscribe(broadcaster, [channel], inbox)
            peer_broadcaster.broadcast(channel, b"at once %d" % round_)
            got = inbox.wait_for(1, timeout_s=self.delivery_wait_s)
            assert got == [(channel, b"at once %d" % round_)], f"round {round_}"

    def test_channels_are_isolated(
        self, broadcaster: Broadcast, subscribe: Callable[..., Subscription]
    ) -> None:
        red, blue = unique_name("petiole-test-red"), unique_name("petiole-test-blue")
        reds, blues = Inbox(), Inbox()
        subscribe(broadcaster, [red], reds)
        subscribe(broadcaster, [blue], blues)

        for i in range(3):
            broadcaster.broadcast(blue, b"blue %d" % i)
            broadcaster.broadcast(red, b"red %d" % i)

        assert reds.wait_for(3, timeout_s=self.delivery_wait_s) == [
            (red, b"red %d" % i) for i in range(3)
        ]
        assert blues.wait_for(3, timeout_s=self.delivery_wait_s) == [
            (blue, b"blue %d" % i) for i in range(3)
        ]

    def test_subscription_to_several_channels_names_the_channel_of_each_message(
        self, broadcaster: Broadcast, subscribe: Callable[..., Subscription]
    ) -> None:
        red, blue = unique_name("petiole-test-red"), unique_name("petiole-test-blue")
        inbox = Inbox()
        subscribe(broadcaster, [red, blue, red], inbox)  # a repeated channel counts once

        broadcaster.broadcast(red, b"r1")
        broadcaster.broadcast(blue, b"b1")
        broadcaster.broadcast(red, b"r2")

        got = inbox.wait_for(3, timeout_s=self.delivery_wait_s)
        assert sorted(got) == sorted([(red, b"r1"), (blue, b"b1"), (red, b"r2")])
        assert [p for c, p in got if c == red] == [b"r1", b"r2"]

    def test_messages_of_a_channel_arrive_in_publish_order(
        self, broadcaster: Broadcast, subscribe: Callable[..., Subscription], channel: str
    ) -> None:
        inbox = Inbox()
        subscribe(broadcaster, [channel], inbox)
        payloads = [b"m%03d" % i for i in range(100)]

        for payload in payloads:
            broadcaster.broadcast(channel, payload)

        inbox.wait_for(len(payloads), timeout_s=self.delivery_wait_s)
        assert inbox.payloads() == payloads

    def test_message_broadcast_before_subscribe_is_not_delivered(
        self, broadcaster: Broadcast, subscribe: Callable[..., Subscription], channel: str
    ) -> None:
        witness = Inbox()
        subscribe(broadcaster, [channel], witness)
        broadcaster.broadcast(channel, b"early")
        witness.wait_for(1, timeout_s=self.delivery_wait_s)  # the broker has handled it
        late = Inbox()
        subscribe(broadcaster, [channel], late)

        broadcaster.broadcast(channel, b"late")

        # Order within a channel: had "early" been delivered, it would be first.
        assert late.wait_for(1, timeout_s=self.delivery_wait_s) == [(channel, b"late")]
        assert witness.wait_for(2, timeout_s=self.delivery_wait_s) == [
            (channel, b"early"),
            (channel, b"late"),
        ]

    def test_no_callback_runs_after_close_returns(
        self, broadcaster: Broadcast, subscribe: Callable[..., Subscription], channel: str
    ) -> None:
        closing, witness = Inbox(), Inbox()
        subscription = subscribe(broadcaster, [channel], closing)
        subscribe(broadcaster, [channel], witness)
        broadcaster.broadcast(channel, b"before")
        assert closing.wait_for(1, timeout_s=self.delivery_wait_s) == [(channel, b"before")]

        self.close(subscription)
        self.close(subscription)  # twice is harmless
        self.assert_count(broadcaster.broadcast(channel, b"after"), 1)

        assert witness.wait_for(2, timeout_s=self.delivery_wait_s)[-1] == (channel, b"after")
        assert closing.received == [(channel, b"before")]

    def test_close_from_inside_the_callback_ends_the_subscription(
        self, broadcaster: Broadcast, subscribe: Callable[..., Subscription], channel: str
    ) -> None:
        received: list[bytes] = []
        holder: list[Subscription] = []
        closed = threading.Event()

        def close_on_first(_channel: str, payload: bytes) -> None:
            received.append(payload)
            holder[0].close()  # must neither deadlock nor raise
            closed.set()

        holder.append(subscribe(broadcaster, [channel], close_on_first))
        witness = Inbox()
        subscribe(broadcaster, [channel], witness)

        broadcaster.broadcast(channel, b"first")
        assert closed.wait(self.delivery_wait_s), "close() from the callback did not return"
        broadcaster.broadcast(channel, b"second")

        assert witness.wait_for(2, timeout_s=self.delivery_wait_s)[-1] == (channel, b"second")
        assert received == [b"first"]

    def test_callback_that_raises_does_not_end_the_subscription(
        self,
        broadcaster: Broadcast,
        subscribe: Callable[..., Subscription],
        channel: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        inbox = Inbox()

        def fail_on_poison(channel: str, payload: bytes) -> None:
            inbox(channel, payload)
            if payload == b"poison":
                raise RuntimeError("callback failed on purpose")

        subscribe(broadcaster, [channel], fail_on_poison)
        with caplog.at_level(logging.WARNING):
            broadcaster.broadcast(channel, b"poison")
            broadcaster.broadcast(channel, b"fine")
            got = inbox.wait_for(2, timeout_s=self.delivery_wait_s)

        assert [p for _, p in got] == [b"poison", b"fine"]
        logged = [r for r in caplog.records if r.levelno >= logging.WARNING and r.exc_info]
        assert logged, "the callback's exception was not logged with its traceback"
        assert "callback failed on purpose" in caplog.text

    def test_callback_runs_on_a_transport_thread_one_message_at_a_time(
        self, broadcaster: Broadcast, subscribe: Callable[..., Subscription], channel: str
    ) -> None:
        lock = threading.Lock()
        running = [0, 0]  # now, most at once
        inbox = Inbox()

        def slow(channel: str, payload: bytes) -> None:
            with lock:
                running[0] += 1
                running[1] = max(running)
            time.sleep(0.002)  # stands for the callback's work: widens any overlap
            with lock:
                running[0] -= 1
            inbox(channel, payload)

        subscribe(broadcaster, [channel], slow)
        for i in range(50):
            broadcaster.broadcast(channel, b"%d" % i)

        assert len(inbox.wait_for(50, timeout_s=self.delivery_wait_s)) == 50
        assert running[1] == 1, f"{running[1]} callbacks of one subscription ran at once"
        assert threading.get_ident() not in inbox.threads

    def test_callback_may_broadcast_a_reply(
        self, broadcaster: Broadcast, subscribe: Callable[..., Subscription]
    ) -> None:
        requests, replies = unique_name("petiole-test-ping"), unique_name("petiole-test-pong")
        answers = Inbox()
        subscribe(broadcaster, [replies], answers)
        subscribe(broadcaster, [requests], lambda _c, p: broadcaster.broadcast(replies, b"re:" + p))

        broadcaster.broadcast(requests, b"ping")

        assert answers.wait_for(1, timeout_s=self.delivery_wait_s) == [(replies, b"re:ping")]

    def test_binary_and_empty_payloads_round_trip_byte_exact(
        self, broadcaster: Broadcast, subscribe: Callable[..., Subscription], channel: str
    ) -> None:
        inbox = Inbox()
        subscribe(broadcaster, [channel], inbox)
        payloads = [_BINARY_PAYLOAD, b"", b"\x00", "é✓".encode()]

        for payload in payloads:
            broadcaster.broadcast(channel, payload)

        inbox.wait_for(len(payloads), timeout_s=self.delivery_wait_s)
        assert inbox.payloads() == payloads
        assert all(type(p) is bytes for p in inbox.payloads())

    def test_large_payload_round_trips_byte_exact(
        self,
        transport: Transport,
        broadcaster: Broadcast,
        subscribe: Callable[..., Subscription],
        channel: str,
    ) -> None:
        limit = transport.capabilities.max_message_bytes
        size = _LARGE_PAYLOAD_BYTES if limit is None else min(_LARGE_PAYLOAD_BYTES, limit)
        payload = (bytes(range(256)) * (size // 256 + 1))[:size]
        inbox = Inbox()
        subscribe(broadcaster, [channel], inbox)

        broadcaster.broadcast(channel, payload)

        assert inbox.wait_for(1, timeout_s=self.delivery_wait_s) == [(channel, payload)]

    def test_many_messages_all_arrive_in_order(
        self, broadcaster: Broadcast, subscribe: Callable[..., Subscription], channel: str
    ) -> None:
        first, second = Inbox(), Inbox()
        subscribe(broadcaster, [channel], first)
        subscribe(broadcaster, [channel], second)
        payloads = [b"message-%04d" % i for i in range(self.many_messages)]

        for payload in payloads:
            broadcaster.broadcast(channel, payload)

        for inbox in (first, second):
            inbox.wait_for(len(payloads), timeout_s=self.delivery_wait_s + len(payloads) * 0.01)
            assert inbox.payloads() == payloads

    def test_closing_the_transport_ends_its_subscriptions(
        self,
        transport: Transport,
        broadcaster: Broadcast,
        peer_broadcaster: Broadcast,
        subscribe: Callable[..., Subscription],
        channel: str,
    ) -> None:
        closing, witness = Inbox(), Inbox()
        subscribe(broadcaster, [channel], closing)
        subscribe(peer_broadcaster, [channel], witness)

        call_with_timeout(transport.close, timeout_s=self.delivery_wait_s, what="close")
        self.assert_count(peer_broadcaster.broadcast(channel, b"after close"), 1)

        assert witness.wait_for(1, timeout_s=self.delivery_wait_s) == [(channel, b"after close")]
        assert closing.received == []

    def test_subscribe_takes_a_sequence_of_channels(
        self, broadcaster: Broadcast, channel: str
    ) -> None:
        with pytest.raises(TypeError):
            broadcaster.subscribe(channel, Inbox())
        with pytest.raises(ValueError, match="channel"):
            broadcaster.subscribe([], Inbox())
