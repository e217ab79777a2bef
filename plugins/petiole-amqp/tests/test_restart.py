"""A node of this module's own, stopped, restarted and killed: durable queues and
confirmed persistent messages survive, and nothing the node started lingers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pika
import pytest
from petiole_amqp.testing import RabbitServer
from petiole_amqp.transport import create_transport

from petiole.plugin_api import port_open
from petiole.testing import unique_name

PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    server = RabbitServer(tmp_path_factory.mktemp("rabbitmq-own")).start()
    yield server
    server.close()


@pytest.fixture
def own_server(module_server: RabbitServer) -> RabbitServer:
    """This module's node, running (a test before may have closed it)."""
    if not module_server.running:
        module_server.start()
    return module_server


def _publish_confirmed(server: RabbitServer, queue_type: str) -> str:
    queue = unique_name()
    connection = server.connection()
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": queue_type})
    channel.basic_publish("", queue, b"kept", PERSISTENT, mandatory=True)
    connection.close()
    return queue


def _get(server: RabbitServer, queue: str) -> bytes | None:
    connection = server.connection()
    channel = connection.channel()
    method, _, body = channel.basic_get(queue, auto_ack=False)
    if method is not None:
        channel.basic_ack(method.delivery_tag)
    connection.close()
    return body


def test_restart_keeps_durable_queues_and_persistent_messages(own_server: RabbitServer) -> None:
    quorum = _publish_confirmed(own_server, "quorum")
    classic = _publish_confirmed(own_server, "classic")
    port = own_server.port

    own_server.restart()

    assert own_server.port == port
    assert _get(own_server, quorum) == b"kept"
    assert _get(own_server, classic) == b"kept"


def test_sigkill_leaves_no_listener_and_the_node_starts_again(
    own_server: RabbitServer,
) -> None:
    # A queue declared moments before the kill may be lost (README, "A broker crash
    # right after a queue is created"): this one checks the fixture's crash and
    # restart; the test below, what the transport's messages survive.
    own_server.kill()
    assert not port_open(own_server.port)
    assert not port_open(own_server.dist_port)
    own_server.start()

    queue = _publish_confirmed(own_server, "classic")
    assert _get(own_server, queue) == b"kept"


def test_close_stops_the_node_and_its_epmd(own_server: RabbitServer) -> None:
    ports = (own_server.port, own_server.dist_port, own_server.epmd_port)
    own_server.close()
    assert not own_server.running
    assert not [port for port in ports if port_open(port)]


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_a_node_sigkilled_right_after_the_transport_created_its_queue_keeps_every_message(
    own_server: RabbitServer, queue_type: str
) -> None:
    """RabbitMQ 3.10 can lose a queue created moments before a crash (README, "A broker
    crash right after a queue is created"); the transport waits out that window
    once, when it creates a queue, so its confirmed messages survive a SIGKILL."""
    queue = unique_name("petiole-crash")
    transport = create_transport(own_server.url, {"queue_type": queue_type})
    try:
        with transport.batch():
            for i in range(200):
                transport.publish(queue, b"m%d" % i)
    finally:
        transport.close()

    own_server.kill()  # at once: no wait between the last confirm and the crash
    own_server.start()

    reader = create_transport(own_server.url, {"queue_type": queue_type})
    try:
        got = []
        while len(got) < 200:
            batch = reader.reserve([queue], max_messages=200, wait_s=10, lease_s=60)
            if not batch:
                break
            got.extend(batch)
        assert sorted(d.payload for d in got) == sorted(b"m%d" % i for i in range(200))
        reader.ack_many(got)
    finally:
        reader.close()


def test_a_queue_the_transport_created_is_consumed_at_once_and_published_into_once_settled(
    rabbit_server: RabbitServer,
) -> None:
    """The settle wait protects messages from a crash right after the queue's
    creation: it holds back this transport's publishes into the new queue, never a
    worker consuming from it (there is nothing in it to lose)."""
    settle_s = 3.0
    queue = unique_name("petiole-settle")
    transport = create_transport(rabbit_server.url, {"new_queue_settle_s": settle_s})
    try:
        created_at = time.monotonic()
        assert transport.reserve([queue], max_messages=1, wait_s=0, lease_s=60) == []
        assert time.monotonic() - created_at < settle_s  # the consumer did not wait
        transport.publish(queue, b"after the window")
        assert time.monotonic() - created_at >= settle_s  # the publish did
        [got] = transport.reserve([queue], max_messages=1, wait_s=10, lease_s=60)
        assert got.payload == b"after the window"
        transport.ack(got)
        started = time.monotonic()
        transport.publish(queue, b"settled")  # once settled: no wait again
        assert time.monotonic() - started < settle_s
    finally:
        transport.close()
