"""The test node works over a real AMQP connection with the plugin's client (pika), and
keeps to itself: loopback only, its own ports, its data in its directory."""

from __future__ import annotations

from pathlib import Path

import pika
import pytest
from petiole_amqp.testing import RabbitServer
from pika.adapters.blocking_connection import BlockingChannel

from petiole.testing import unique_name

PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net shows them) with a listening TCP socket on port."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, _remote, state = line.split()[1:4]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


def declare_quorum_queue(channel: BlockingChannel) -> str:
    name = unique_name()
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    return name


def test_confirmed_message_in_a_durable_quorum_queue_comes_back_and_is_acked(
    channel: BlockingChannel,
) -> None:
    queue = declare_quorum_queue(channel)
    channel.basic_publish("", queue, b"hello", PERSISTENT, mandatory=True)

    method, properties, body = channel.basic_get(queue, auto_ack=False)
    assert method is not None
    assert body == b"hello"
    assert properties.delivery_mode == 2
    channel.basic_ack(method.delivery_tag)

    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    method, _, _ = channel.basic_get(queue, auto_ack=False)
    assert method is None


def test_node_listens_on_loopback_only(rabbit_server: RabbitServer) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux's /proc/net/tcp")
    for port in (rabbit_server.port, rabbit_server.dist_port, rabbit_server.epmd_port):
        addresses = _listening(port)
        assert addresses, f"nothing listens on {port}"
        assert addresses <= LOOPBACK, f"port {port} listens on {addresses}"


def test_node_is_its_own_and_keeps_its_data_in_its_directory(
    rabbit_server: RabbitServer,
) -> None:
    assert not rabbit_server.node.startswith("rabbit@")
    assert rabbit_server.port != 5672
    assert rabbit_server.epmd_port != 4369
    assert (rabbit_server.directory / "mnesia" / rabbit_server.node).is_dir()
