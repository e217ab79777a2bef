"""What the transport does when the broker's topology changes under it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_amqp import _topology as topo
from petiole_amqp.testing import RabbitServer
from petiole_amqp.transport import AmqpTransport, create_transport

from petiole.testing import unique_name, wait_until
from petiole.transport import Delivery


@pytest.fixture
def transport(rabbit_server: RabbitServer) -> Iterator[AmqpTransport]:
    transport = create_transport(rabbit_server.url, {"new_queue_settle_s": 0})
    yield transport
    transport.close()


def test_a_delay_exchange_deleted_under_the_transport_is_declared_again_and_held_deliveries_stay(
    transport: AmqpTransport, rabbit_server: RabbitServer
) -> None:
    queue = unique_name("petiole-recovery")
    transport.publish(queue, b"held")
    transport.publish(queue, b"first delay", delay_s=3600)
    held: list[Delivery] = []
    consumer = transport.consume([queue], prefetch=1, lease_s=60, on_delivery=held.append)
    assert wait_until(lambda: len(held) == 1, timeout_s=10)
    link = transport._link
    assert link is not None
    generation = link.generation

    connection = rabbit_server.connection()
    connection.channel().exchange_delete(topo.delay_exchange(11, 22))  # 3600 s starts at 11
    connection.close()
    # The broker closes the publishing channel over the missing exchange: the transport
    # declares its delay topology again and resends, on a new publishing channel.
    transport.publish(queue, b"second delay", delay_s=3600)

    assert transport.size(queue) == 2  # both delayed messages, in the levels
    assert link.generation == generation  # the connection, and the consumer, stayed
    assert transport.extend(held[0], lease_s=60)
    transport.ack(held[0])
    consumer.close()
    assert transport.purge(queue) == 2
