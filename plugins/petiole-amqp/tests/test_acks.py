"""Acknowledging pushed deliveries in batches: ``multiple`` never covers one still held."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from petiole_amqp.testing import RabbitServer
from petiole_amqp.transport import AmqpTransport, create_transport

from petiole.testing import unique_name, wait_until
from petiole.transport import Delivery


@pytest.fixture
def transport(rabbit_server: RabbitServer) -> Iterator[AmqpTransport]:
    transport = create_transport(rabbit_server.url, {})
    yield transport
    transport.close()


def test_a_batch_ack_leaves_an_older_unsettled_delivery_held(
    transport: AmqpTransport, rabbit_server: RabbitServer
) -> None:
    queue = unique_name("petiole-acks")
    for i in range(8):
        transport.publish(queue, b"m%d" % i)
    got: list[Delivery] = []
    lock = threading.Lock()

    def on_delivery(delivery: Delivery) -> None:
        with lock:
            got.append(delivery)

    consumer = transport.consume([queue], prefetch=8, lease_s=60, on_delivery=on_delivery)
    assert wait_until(lambda: len(got) == 8, timeout_s=10)
    by_payload = {d.payload: d for d in got}
    held = by_payload[b"m2"]
    # m0, m1 below the held one (one multiple ack), m3..m7 above it (one by one).
    transport.ack_many([d for d in got if d is not held])
    assert transport.extend(held, lease_s=60)
    consumer.close()

    # Only the held one comes back when its connection goes; the others were acked.
    other = create_transport(rabbit_server.url, {})
    try:
        transport.close()
        again = other.reserve([queue], max_messages=10, wait_s=5, lease_s=60)
        assert [(d.payload, d.delivery_count) for d in again] == [(b"m2", 2)]
        other.ack(again[0])
        assert other.reserve([queue], max_messages=10, wait_s=0.5, lease_s=60) == []
    finally:
        other.close()


def test_settling_from_inside_on_delivery_does_not_wait_for_its_own_thread(
    transport: AmqpTransport,
) -> None:
    """A worker dead-letters a poison message, or gives one back with a delay, as it
    arrives, on the transport's I/O thread: the copy's confirm can only come on that
    thread, so the original is acknowledged when it comes, not waited for."""
    queue = unique_name("petiole-acks")
    transport.publish(queue, b"poison")
    transport.publish(queue, b"later")
    transport.publish(queue, b"fine")
    seen: list[bytes] = []

    def on_delivery(delivery: Delivery) -> None:
        seen.append(delivery.payload)
        if delivery.payload == b"poison":
            transport.dead_letter(delivery, reason="poison, on arrival")
        elif delivery.payload == b"later" and delivery.delivery_count == 1:
            transport.nack(delivery, requeue=True, delay_s=1)
        else:
            transport.ack(delivery)

    consumer = transport.consume([queue], prefetch=4, lease_s=60, on_delivery=on_delivery)
    try:
        assert wait_until(lambda: seen.count(b"later") == 2 and b"fine" in seen, timeout_s=10)
    finally:
        consumer.close()
    assert seen.count(b"poison") == 1
    [dead] = transport.dead_letters(queue)
    assert (dead.payload, dead.reason) == (b"poison", "poison, on arrival")
    assert wait_until(lambda: transport.size(queue) == 0, timeout_s=5)
    transport.purge_dead_letters(queue)
