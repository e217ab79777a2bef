"""Broker-held delays: binary TTL levels per destination queue (``_topology``).

The routing rules are checked without a broker by running a key through the
bindings the transport declares; the broker tests check short delays by the
clock and a 2-hour one by walking it through its level queues: a message a
level queue rejects is dead-lettered exactly as one that expired there.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pytest
from petiole_amqp import _topology as topo
from petiole_amqp.testing import RabbitServer
from petiole_amqp.transport import AmqpTransport, create_transport
from pika.adapters.blocking_connection import BlockingChannel

from petiole.errors import ConfigError
from petiole.testing import unique_name, wait_until
from petiole.transport import Delivery

LEVELS = 22  # the default: every transport on one vhost must agree (README)
TWO_HOURS_S = 7200
TWO_HOURS_BITS = (12, 11, 10, 5)  # 4096 + 2048 + 1024 + 32
# How late a short delay may arrive on a loaded test machine.
LATE_S = 0.5
# Early arrivals beyond clock granularity are bugs: a task never runs before its time.
EARLY_S = 0.05
BROKER_S = 10.0


# -- routing, without a broker ----------------------------------------------------------


def _matches(pattern: list[str], words: list[str]) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more."""
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_matches(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _matches(rest, words[1:])


def _topic(pattern: str, key: str) -> bool:
    return _matches(pattern.split("."), key.split("."))


def _bindings(exchange_level: int, queues: list[str]) -> list[tuple[str, str]]:
    """What the transport binds to ``petiole.delay.L.k``: (pattern, destination)."""
    found = [
        (topo.level_binding(q, exchange_level, LEVELS, "1"), topo.delay_queue(q, exchange_level))
        for q in queues
    ]
    if exchange_level:
        found.append(
            (
                topo.skip_binding(exchange_level, LEVELS),
                topo.delay_exchange(exchange_level - 1, LEVELS),
            )
        )
    else:
        found += [(topo.level_binding(q, 0, LEVELS, "0"), q) for q in queues]
    return found


def _walk(queue: str, seconds: int, neighbours: list[str]) -> tuple[list[int], int]:
    """The levels a message for ``queue`` is held in, and for how long in all, routed
    as RabbitMQ would through every destination's bindings."""
    everyone = [queue, *neighbours]
    exchange, key = topo.delay_route(queue, seconds, LEVELS)
    level = int(exchange.rsplit(".", 1)[1])
    held: list[int] = []
    while True:
        targets = [dest for pattern, dest in _bindings(level, everyone) if _topic(pattern, key)]
        assert len(targets) == 1, (
            f"at {topo.delay_exchange(level, LEVELS)}, {key} goes to {targets}"
        )
        (target,) = targets
        if target == queue:
            return held, sum(2**k for k in held)
        if target == topo.delay_queue(queue, level):
            held.append(level)
            if level == 0:  # its dead letters go straight to the queue
                return held, sum(2**k for k in held)
        else:
            assert target == topo.delay_exchange(level - 1, LEVELS), target
        level -= 1


def test_two_hours_start_at_level_12_and_pass_levels_12_11_10_5() -> None:
    exchange, key = topo.delay_route("jobs", TWO_HOURS_S, LEVELS)

    assert exchange == "petiole.delay.22.12"
    words = key.split(".")
    assert words[LEVELS:] == ["jobs"]
    bits = words[:LEVELS]
    assert int("".join(bits), 2) == TWO_HOURS_S
    assert [LEVELS - 1 - i for i, bit in enumerate(bits) if bit == "1"] == list(TWO_HOURS_BITS)
    assert _walk("jobs", TWO_HOURS_S, []) == (list(TWO_HOURS_BITS), TWO_HOURS_S)


@pytest.mark.parametrize(
    "seconds", [1, 2, 3, 11, 1023, 1024, 86_399, 86_400, 2**LEVELS - 2, 2**LEVELS - 1]
)
def test_every_delay_is_held_exactly_in_one_level_per_set_bit(seconds: int) -> None:
    held, total_s = _walk("jobs", seconds, [])

    assert total_s == seconds
    assert held == sorted(held, reverse=True)
    assert len(held) == bin(seconds).count("1") <= LEVELS
    assert topo.delay_route("jobs", seconds, LEVELS)[0] == topo.delay_exchange(held[0], LEVELS)


@pytest.mark.parametrize(
    ("queue", "neighbours"),
    [
        ("jobs", ["jobs.x", "x.jobs", "other"]),
        ("a.b", ["b", "a", "a.b.c", "a.b.petiole-delay-00"]),
    ],
)
def test_a_delay_never_reaches_another_destinations_levels(
    queue: str, neighbours: list[str]
) -> None:
    for seconds in (1, 5, TWO_HOURS_S):
        assert _walk(queue, seconds, neighbours)[1] == seconds


def test_skip_binding_matches_a_zero_bit_for_any_destination() -> None:
    _, key = topo.delay_route("a.b.c", 0b101, LEVELS)

    assert _topic(topo.skip_binding(1, LEVELS), key)
    assert not _topic(topo.skip_binding(2, LEVELS), key)
    assert not _topic(topo.skip_binding(0, LEVELS), key)


@pytest.mark.parametrize(
    ("delay_s", "seconds"),
    [
        (0.2, 1),
        (0.999, 1),
        (1.0, 1),
        # Within a millisecond of a whole second counts as that second (float noise
        # in ``eta - time.time()``); beyond it rounds up.
        (1.0005, 1),
        (1.0011, 2),
        (1.5, 2),
        (2.0, 2),
        (7199.5, TWO_HOURS_S),
        (float(TWO_HOURS_S), TWO_HOURS_S),
    ],
)
def test_delay_seconds_round_up_to_whole_seconds(delay_s: float, seconds: int) -> None:
    assert topo.delay_seconds(delay_s) == seconds


@pytest.mark.parametrize("delay_s", [0.0, -0.0, -1.0, -1e9, math.nan])
def test_no_delay_for_zero_negative_or_nan(delay_s: float) -> None:
    assert topo.delay_seconds(delay_s) == 0


@pytest.mark.parametrize("seconds", [0, -1, 2**LEVELS, 2**LEVELS + 1])
def test_delay_route_refuses_a_delay_outside_the_levels(seconds: int) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        topo.delay_route("jobs", seconds, LEVELS)


def test_delay_route_of_the_longest_delay_sets_every_bit() -> None:
    exchange, key = topo.delay_route("jobs", 2**LEVELS - 1, LEVELS)

    assert exchange == topo.delay_exchange(LEVELS - 1, LEVELS)
    assert key == "1." * LEVELS + "jobs"


@pytest.mark.parametrize("queue", ["a.*.b", "*", "#", "a.#", "#.a", "a.b.*"])
def test_a_wildcard_word_cannot_take_delays(queue: str) -> None:
    with pytest.raises(ConfigError, match="wildcard"):
        topo.check_delay_destination(queue, LEVELS)


@pytest.mark.parametrize("queue", ["a*b", "a#b", "jobs", "a.b-c", "x" * (255 - 2 * LEVELS)])
def test_a_name_with_no_wildcard_word_that_fits_can_take_delays(queue: str) -> None:
    topo.check_delay_destination(queue, LEVELS)


def test_a_name_too_long_for_the_routing_key_cannot_take_delays() -> None:
    longest = "x" * (255 - 2 * LEVELS)
    _, key = topo.delay_route(longest, 2**LEVELS - 1, LEVELS)
    assert len(key.encode()) == 255

    with pytest.raises(ConfigError, match="too long"):
        topo.check_delay_destination(longest + "x", LEVELS)
    with pytest.raises(ConfigError, match="too long"):  # bytes, not characters
        topo.check_delay_destination("é" * (255 - 2 * LEVELS), LEVELS)


@pytest.mark.parametrize("level", [0, 1, 5, 21])
def test_level_queues_hold_for_their_power_of_two_and_hand_on(level: int) -> None:
    for queue_type in ("quorum", "classic"):
        arguments = topo.delay_queue_arguments("jobs", level, levels=LEVELS, queue_type=queue_type)
        assert arguments["x-message-ttl"] == 1000 * 2**level
        assert arguments["x-queue-type"] == queue_type
        if level:
            assert arguments["x-dead-letter-exchange"] == topo.delay_exchange(level - 1, LEVELS)
            assert "x-dead-letter-routing-key" not in arguments  # the bits travel on
        else:
            assert arguments["x-dead-letter-exchange"] == ""
            assert arguments["x-dead-letter-routing-key"] == "jobs"


# -- on a broker ----------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """A queue whose delay levels exist, shared by a module's tests of one queue type
    (a quorum destination declares 24 queues): each test starts it empty."""

    queue: str
    queue_type: str


def _transport(server: RabbitServer, queue_type: str) -> AmqpTransport:
    return create_transport(server.url, {"queue_type": queue_type})


@pytest.fixture(scope="module", params=["quorum", "classic"])
def destination(request: pytest.FixtureRequest, rabbit_server: RabbitServer) -> Destination:
    queue_type: str = request.param
    queue = unique_name(f"delays-{queue_type}")
    transport = _transport(rabbit_server, queue_type)
    try:
        transport.publish(queue, b"declares the levels", delay_s=2**21)
        transport.purge(queue)
    finally:
        transport.close()
    return Destination(queue, queue_type)


@pytest.fixture
def transport(rabbit_server: RabbitServer, destination: Destination) -> Iterator[AmqpTransport]:
    """A transport of the destination's type, on an empty destination; closing it gives
    back whatever a failed test left reserved, and the next test purges it."""
    transport = _transport(rabbit_server, destination.queue_type)
    transport.purge(destination.queue)
    assert transport.size(destination.queue) == 0
    yield transport
    transport.close()


@pytest.fixture
def pika_channel(rabbit_server: RabbitServer) -> Iterator[BlockingChannel]:
    connection = rabbit_server.connection()
    yield connection.channel()
    connection.close()


def _count(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count or 0)


def _counts(channel: BlockingChannel, queue: str) -> dict[str, int]:
    """Ready messages in ``queue`` and each of its level queues, the non-empty ones."""
    names = [queue] + [topo.delay_queue(queue, k) for k in range(LEVELS)]
    return {name: n for name in names if (n := _count(channel, name))}


def _only(channel: BlockingChannel, queue: str, holder: str) -> bool:
    """Whether ``holder`` (``queue`` or one of its levels) holds its one message."""
    return _counts(channel, queue) == {holder: 1}


def _reserve_all(
    transport: AmqpTransport, queue: str, expected: int, deadline: float
) -> list[tuple[float, bytes]]:
    """Poll until ``expected`` messages were reserved or the deadline passed: each
    payload with the monotonic time it was first seen."""
    seen: list[tuple[float, bytes]] = []
    while len(seen) < expected and time.monotonic() < deadline:
        left = deadline - time.monotonic()
        for delivery in transport.reserve(
            [queue], max_messages=expected, wait_s=min(0.2, max(0.0, left)), lease_s=30
        ):
            seen.append((time.monotonic(), delivery.payload))
            transport.ack(delivery)
    return seen


def test_a_3_s_delay_arrives_on_time_and_an_undelayed_message_goes_first(
    transport: AmqpTransport, destination: Destination
) -> None:
    queue = destination.queue
    # Each message enters the levels between the publish call and its confirm.
    sent: dict[bytes, tuple[float, float]] = {}
    for i in range(3):
        payload = f"in 3 s #{i}".encode()
        before = time.monotonic()
        transport.publish(queue, payload, delay_s=3)
        sent[payload] = (before, time.monotonic())
    transport.publish(queue, b"now")

    first = transport.reserve([queue], max_messages=10, wait_s=BROKER_S, lease_s=30)
    assert [d.payload for d in first] == [b"now"]
    transport.ack(first[0])
    assert transport.size(queue) == 3  # delayed, yet counted

    last_confirm = max(confirmed for _, confirmed in sent.values())
    seen = _reserve_all(transport, queue, 3, deadline=last_confirm + 3 + LATE_S + 1.0)
    assert sorted(payload for _, payload in seen) == sorted(sent)
    early = {p: at - sent[p][0] - 3 for at, p in seen}  # >= 0: not before its time
    late = {p: at - sent[p][1] - 3 for at, p in seen}  # <= 0.5: on time
    print(
        f"\n{destination.queue_type}: 3 s delay, late by "
        + ", ".join(f"{s * 1000:.0f}" for s in sorted(late.values()))
        + " ms after the confirm"
    )
    assert all(s >= -EARLY_S for s in early.values()), early
    assert all(s <= LATE_S for s in late.values()), late
    assert transport.size(queue) == 0


def test_two_hours_pass_through_levels_12_11_10_5_in_turn(
    transport: AmqpTransport,
    destination: Destination,
    pika_channel: BlockingChannel,
    rabbit_server: RabbitServer,
) -> None:
    queue = destination.queue
    payload = bytes(range(256)) + b"\x00two hours\xff"
    message_id = unique_name("two-hours")
    priority = 7 if destination.queue_type == "classic" else 0
    transport.publish(queue, payload, message_id=message_id, delay_s=TWO_HOURS_S, priority=priority)
    exchange, key = topo.delay_route(queue, TWO_HOURS_S, LEVELS)

    assert transport.size(queue) == 1
    for hop, level in enumerate(TWO_HOURS_BITS):
        here = topo.delay_queue(queue, level)
        assert wait_until(partial(_only, pika_channel, queue, here), timeout_s=BROKER_S), (
            f"expected one message in {here} only: {_counts(pika_channel, queue)}"
        )
        method, properties, body = pika_channel.basic_get(here, auto_ack=False)
        assert method is not None
        assert method.delivery_tag is not None
        assert properties is not None
        assert method.routing_key == key
        if hop == 0:
            assert method.exchange == exchange
        assert body == payload
        assert properties.message_id == message_id
        assert (properties.priority or 0) == priority
        # Dead-lettered as if its 2**level seconds had passed.
        pika_channel.basic_reject(method.delivery_tag, requeue=False)

    assert wait_until(partial(_only, pika_channel, queue, queue), timeout_s=BROKER_S), _counts(
        pika_channel, queue
    )
    (delivery,) = transport.reserve([queue], max_messages=10, wait_s=BROKER_S, lease_s=30)
    assert delivery.payload == payload
    assert delivery.delivery_count == 1
    assert delivery.message_id == message_id
    transport.ack(delivery)

    arguments = _queue_arguments(rabbit_server, [topo.delay_queue(queue, k) for k in range(LEVELS)])
    for level in range(LEVELS):
        assert arguments[topo.delay_queue(queue, level)]["x-message-ttl"] == 1000 * 2**level


def _queue_arguments(server: RabbitServer, names: list[str]) -> dict[str, dict[str, object]]:
    wanted = set(names)
    listed = json.loads(server.ctl("list_queues", "name", "arguments", "--formatter", "json"))
    found = {q["name"]: _argument_table(q["arguments"]) for q in listed if q["name"] in wanted}
    assert set(found) == wanted
    return found


def _argument_table(arguments: object) -> dict[str, object]:
    """rabbitmqctl's JSON gives a queue's arguments as a map, or as [name, type, value]
    triples, depending on the version."""
    if isinstance(arguments, dict):
        return arguments
    assert isinstance(arguments, list), arguments
    return {entry[0]: entry[-1] for entry in arguments}


def test_purge_removes_delayed_messages_and_counts_them(
    transport: AmqpTransport, destination: Destination
) -> None:
    queue = destination.queue
    transport.publish(queue, b"now")
    # An endless delay is held as long as the levels can: the longest.
    for delay_s in (60, TWO_HOURS_S, 5 * 86_400, float("inf")):
        transport.publish(queue, b"later", delay_s=delay_s)
    assert transport.size(queue) == 5

    assert transport.purge(queue) == 5
    assert transport.size(queue) == 0
    assert transport.reserve([queue], max_messages=10, wait_s=0.0, lease_s=30) == []


def test_a_nack_with_a_delay_comes_back_after_it_counted_once_more(
    transport: AmqpTransport, destination: Destination
) -> None:
    queue = destination.queue
    transport.publish(queue, b"retry me", message_id="retry-1")
    (delivery,) = transport.reserve([queue], max_messages=1, wait_s=BROKER_S, lease_s=30)
    assert delivery.delivery_count == 1

    nacked_at = time.monotonic()
    transport.nack(delivery, requeue=True, delay_s=1)
    confirmed_at = time.monotonic()
    assert transport.size(queue) == 1  # in level 0, not in the queue

    returned: list[Delivery] = []
    while not returned and time.monotonic() < confirmed_at + 1 + LATE_S + 1.0:
        returned = transport.reserve([queue], max_messages=10, wait_s=0.2, lease_s=30)
    seen_at = time.monotonic()
    late_ms = (seen_at - confirmed_at - 1) * 1000
    print(f"\n{destination.queue_type}: 1 s retry late by {late_ms:.0f} ms")
    assert len(returned) == 1
    (again,) = returned
    assert seen_at - nacked_at >= 1 - EARLY_S
    assert seen_at - confirmed_at <= 1 + LATE_S
    assert again.payload == b"retry me"
    assert again.delivery_count == 2
    assert again.message_id == "retry-1"
    transport.ack(again)


def test_message_id_and_priority_survive_a_real_delay(
    transport: AmqpTransport, destination: Destination, pika_channel: BlockingChannel
) -> None:
    queue = destination.queue
    classic = destination.queue_type == "classic"
    transport.publish(queue, b"low", priority=1)
    transport.publish(queue, b"high", message_id="urgent-1", delay_s=1, priority=8)

    assert wait_until(lambda: _count(pika_channel, queue) == 2, timeout_s=1 + LATE_S + 1.0)
    if classic:
        method, properties, body = pika_channel.basic_get(queue, auto_ack=False)
        assert method is not None
        assert method.delivery_tag is not None
        assert properties is not None
        assert (body, properties.priority, properties.message_id) == (b"high", 8, "urgent-1")
        pika_channel.basic_nack(method.delivery_tag, requeue=True)

    got = transport.reserve([queue], max_messages=2, wait_s=BROKER_S, lease_s=30)
    by_payload = {d.payload: d for d in got}
    assert set(by_payload) == {b"low", b"high"}
    assert by_payload[b"high"].message_id == "urgent-1"
    if classic:  # the higher priority goes first though it came last
        assert [d.payload for d in got] == [b"high", b"low"]
    transport.ack_many(got)
