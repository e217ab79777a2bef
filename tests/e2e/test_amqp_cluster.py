"""High availability on a three-node RabbitMQ cluster: 2,000 tasks on a quorum queue,
the node that leads the queue stopped mid-run, nothing lost.

The broker URL names all three nodes (``amqp://u:p@h:p1,h:p2,h:p3/%2F``): producers
and workers connected to the stopped node reconnect to the next one. Results go to
a SQLite file, so only RabbitMQ is under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Producer, Workers, produce_until_under_way, worker_env

from petiole import Petiole

pytest.importorskip("petiole_amqp", reason="petiole-amqp is not installed")

from petiole_amqp.testing import RabbitCluster

pytestmark = pytest.mark.slow

TASKS = 2000


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RabbitCluster]:
    cluster = RabbitCluster(tmp_path / "cluster", size=3).start()
    yield cluster
    cluster.close()


def cluster_url(cluster: RabbitCluster) -> str:
    first = cluster.nodes[0]
    hosts = ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes)
    return f"amqp://{first.user}:{first.password}@{hosts}/%2F"


def test_stopping_the_leader_of_the_queue_mid_run_loses_no_task(
    cluster: RabbitCluster, tmp_path: Path
) -> None:
    url = cluster_url(cluster)
    env = worker_env(url, f"sqlite:///{tmp_path / 'results.db'}", lease_s="3")
    app = Petiole("ha", broker=url, backend=env["PETIOLE_BACKEND_URL"], config_file="/dev/null")
    workers = Workers(env, tmp_path)
    producer: Producer | None = None
    try:
        workers.start("-P", "processes", "-c", "2")
        workers.start("-P", "threads", "-c", "4")
        workers.wait_ready()
        producer = produce_until_under_way(
            env,
            workers,
            lambda: app.transport.size("default"),
            count=TASKS,
            task_delay_s=0.005,
            timeout_s=180,
        )
        leader = cluster.leader_of("default")
        cluster.stop_node(leader)
        successor = cluster.leader_of("default")
        assert successor is not leader
        summary = producer.summary(timeout_s=180)
    finally:
        if producer is not None and producer.proc.poll() is None:
            producer.proc.kill()
            producer.proc.communicate()
        workers.stop_all()
        app.close()

    assert summary["missing"] == [], (summary, workers.logs())
    assert summary["wrong"] == [], summary
    assert summary["correct"] == TASKS, summary
    print(f"\nleader {leader.node} stopped mid-run; {successor.node} took over; {summary}")
