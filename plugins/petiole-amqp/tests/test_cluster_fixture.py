"""The three-node cluster of issue #16's high-availability test: its nodes form one
cluster on 127.0.0.1, a quorum queue is replicated across them, losing the queue's
leader loses no confirmed message, and closing the cluster leaves nothing running.

One cluster serves the module (it takes about 20 s to start); the last test closes it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from petiole_amqp.testing import RabbitCluster, RabbitServer

from petiole.plugin_api import port_open
from petiole.testing import unique_name

pytestmark = pytest.mark.slow

PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    cluster = RabbitCluster(tmp_path_factory.mktemp("rabbitmq-cluster")).start()
    yield cluster
    cluster.close()


@pytest.fixture
def cluster(module_cluster: RabbitCluster) -> RabbitCluster:
    """This module's cluster with every node running (a test before may have stopped one)."""
    if not all(node.running for node in module_cluster.nodes):
        module_cluster.start()
    return module_cluster


def _declare_and_publish(server: RabbitServer, bodies: list[bytes]) -> str:
    """A new durable quorum queue, declared through ``server``, holding ``bodies``, each
    published persistent and confirmed by the broker."""
    queue = unique_name()
    connection = server.connection()
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        for body in bodies:
            channel.basic_publish("", queue, body, PERSISTENT, mandatory=True)
    finally:
        connection.close()
    return queue


def _take_all(server: RabbitServer, queue: str) -> list[bytes]:
    """Every message in ``queue``, taken through ``server``."""
    taken: list[bytes] = []
    connection = server.connection()
    try:
        channel = connection.channel()
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None or body is None:
                return taken
            taken.append(body)
    finally:
        connection.close()


def _processes_of(cluster: RabbitCluster) -> list[int]:
    """The processes whose environment names one of ``cluster``'s nodes: each node's Erlang
    VM and the helpers it spawns (``erl_child_setup``, ``inet_gethost``, the disk monitor's
    shell), which run in process groups of their own."""
    marker = f"RABBITMQ_NODENAME={cluster.name}-".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue  # exited meanwhile, or not ours
    return found


def test_nodes_form_one_cluster_each_with_its_own_name_and_ports(
    cluster: RabbitCluster,
) -> None:
    names = [node.node for node in cluster.nodes]
    assert re.fullmatch(r"petiole-[0-9a-f]{8}", cluster.name)
    assert names == [f"{cluster.name}-{index}@localhost" for index in (1, 2, 3)]
    assert cluster.running_nodes() == set(names)
    ports = [port for node in cluster.nodes for port in (node.port, node.dist_port)]
    assert len(set(ports)) == len(ports)
    assert {node.epmd_port for node in cluster.nodes} == {cluster.epmd_port}
    assert cluster.urls == [
        f"amqp://guest:guest@127.0.0.1:{node.port}/%2F" for node in cluster.nodes
    ]


def test_quorum_queue_declared_through_one_node_is_replicated_and_read_through_another(
    cluster: RabbitCluster,
) -> None:
    first, _, third = cluster.nodes
    queue = _declare_and_publish(first, [b"one", b"two"])

    listed = json.loads(third.ctl("list_queues", "name", "members", "--formatter", "json"))
    (members,) = [row["members"] for row in listed if row["name"] == queue]
    assert sorted(members) == sorted(node.node for node in cluster.nodes)
    assert _take_all(third, queue) == [b"one", b"two"]


def test_stopping_the_queue_leader_loses_no_confirmed_message(cluster: RabbitCluster) -> None:
    bodies = [b"%d" % number for number in range(200)]
    queue = _declare_and_publish(cluster.nodes[0], bodies)
    leader = cluster.leader_of(queue)

    cluster.stop_node(leader)

    new_leader = cluster.leader_of(queue)  # waits for the election
    assert new_leader is not leader
    # Read through the follower left, not the leader: the queue answers through any node.
    reader = next(n for n in cluster.nodes if n.running and n is not new_leader)
    assert _take_all(reader, queue) == bodies


def test_close_stops_every_node_and_epmd(module_cluster: RabbitCluster) -> None:
    # Last in the module: it closes the module's cluster (a cluster of its own would
    # double the module's run time).
    ports = [module_cluster.epmd_port]
    ports += [port for node in module_cluster.nodes for port in (node.port, node.dist_port)]
    assert _processes_of(module_cluster), "the test does not see the nodes' processes"

    module_cluster.close()

    assert [port for port in ports if port_open(port)] == []
    assert not any(node.running for node in module_cluster.nodes)
    # The VMs are gone once their ports are closed; their helpers exit when they notice,
    # a moment later.
    deadline = time.monotonic() + 10.0
    while (left := _processes_of(module_cluster)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []
