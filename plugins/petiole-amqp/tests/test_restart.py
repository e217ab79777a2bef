"""A node of this module's own, stopped, restarted and killed: durable queues and
confirmed persistent messages survive, and nothing the node started lingers."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest
from petiole_amqp.testing import RabbitServer

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
    # What survives a SIGKILL is not asserted here: on this machine a single-node quorum
    # queue came back empty, and once (in CI) a classic queue declared and confirmed just
    # before the kill was gone altogether (README, "Findings"). The transport's crash
    # tests settle durability; this one checks the fixture's crash and restart.
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
