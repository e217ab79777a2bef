"""A producer and worker processes on a real RabbitMQ node (results: a SQLite file).

The node is the test's own (petiole_amqp.testing.RabbitServer): its own node name,
ports and data under a temporary directory. Queues are quorum queues, the default.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import (
    OutageLines,
    Producer,
    Workers,
    produce_until_under_way,
    run_chord_sigkill_scenario,
    run_sigkill_scenario,
    worker_env,
)

from petiole import Petiole
from petiole.testing import wait_until

pytest.importorskip("petiole_amqp", reason="petiole-amqp is not installed")

from petiole_amqp.testing import RabbitServer

pytestmark = pytest.mark.slow

OUTAGE_LINE = "connection lost"


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    server = RabbitServer(tmp_path_factory.mktemp("rabbitmq")).start()
    yield server
    server.close()


def env_for(server: RabbitServer, tmp_path: Path) -> dict[str, str]:
    # Each test its own vhost would need rabbitmqctl; a fresh results file and the
    # queue drained by the end of each test keep the tests apart instead.
    return worker_env(server.url, f"sqlite:///{tmp_path / 'results.db'}", lease_s="3")


@pytest.fixture
def env(rabbit: RabbitServer, tmp_path: Path) -> dict[str, str]:
    return env_for(rabbit, tmp_path)


def test_thousand_tasks_with_a_sigkilled_worker_lose_none_on_rabbitmq(
    env: dict[str, str], tmp_path: Path
) -> None:
    summary = run_sigkill_scenario(env, tmp_path)
    assert (summary["missing"], summary["wrong"]) == ([], []), summary


def test_chord_fires_once_when_members_are_redelivered_after_a_sigkill_on_rabbitmq(
    canvas_app: Petiole, env: dict[str, str], tmp_path: Path
) -> None:
    run = run_chord_sigkill_scenario(canvas_app, env, tmp_path, size=500)
    assert 0 < run.members_by_victim() < 500, "the victim must have been part of the run"
    assert len(run.firings) == 1, run.firings
    assert run.firings[0].endswith(" 500")


def test_rabbitmq_restarted_mid_run_loses_no_task_and_logs_one_line(tmp_path: Path) -> None:
    (tmp_path / "rabbitmq").mkdir()
    server = RabbitServer(tmp_path / "rabbitmq").start()
    env = env_for(server, tmp_path)
    app = Petiole(
        "restart",
        broker=server.url,
        backend=env["PETIOLE_BACKEND_URL"],
        config_file="/dev/null",
    )
    outage = OutageLines(OUTAGE_LINE)
    logging.getLogger("petiole_amqp").addHandler(outage)
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
            count=2000,
            task_delay_s=0.002,
            timeout_s=180,
        )

        server.stop()
        # While the node is down, this process publishes too: each publish waits,
        # retrying with backoff, until the node is back.
        late_ids: list[str] = []

        def publish_late() -> None:
            for i in range(100):
                late_ids.append(app.send_task("e2e.square", args=(1000 + i,)).id)

        publisher = threading.Thread(target=publish_late, name="late-publisher")
        publisher.start()
        assert outage.seen.wait(30), "the publisher never noticed the node was down"
        assert wait_until(
            lambda: all(OUTAGE_LINE in workers.log(i) for i in range(2)), timeout_s=30
        ), workers.logs()
        server.start()
        publisher.join(90)
        assert not publisher.is_alive(), "publishing did not resume after the restart"

        summary = producer.summary(timeout_s=180)
        late = app.backend.wait(late_ids, timeout_s=90)
    finally:
        logging.getLogger("petiole_amqp").removeHandler(outage)
        if producer is not None and producer.proc.poll() is None:
            producer.proc.kill()
            producer.proc.communicate()
        workers.stop_all()
        app.close()
        server.close()

    assert summary["correct"] == 2000, (summary, workers.logs())
    assert summary["missing"] == [], summary
    assert summary["wrong"] == [], summary
    assert len(late) == 100
    assert all(record.state == "SUCCESS" for record in late.values())
    # One line for the outage in this process, however many publishes waited through it.
    assert len(outage.lines) == 1, outage.lines
    assert "amqp broker amqp://guest:***@127.0.0.1:" in outage.lines[0]


def test_a_countdown_waits_in_the_broker_across_a_worker_restart_and_runs_on_time(
    rabbit: RabbitServer, env: dict[str, str], tmp_path: Path
) -> None:
    app = Petiole(
        "countdown", broker=rabbit.url, backend=env["PETIOLE_BACKEND_URL"], config_file="/dev/null"
    )
    workers = Workers(env, tmp_path)
    try:
        first = workers.start("-P", "threads", "-c", "2")
        workers.wait_ready()
        # 6 s: the first delayed message of a queue waits for its delay levels to be
        # declared and to settle (new_queue_settle_s, 2.5 s), and that counts against
        # its delay; a countdown of 3 could be spent by then on a loaded machine, and
        # the message go straight to the queue and the worker.
        result = app.send_task("e2e.started_at", countdown=6)
        # The message waits in the delay levels, not in the worker: killing it loses nothing.
        assert app.transport.size("default") == 1
        workers.kill(first)
        second = workers.start("-P", "threads", "-c", "2")
        workers.wait_ready(procs=[second])
        timing = result.get(timeout=30)
    finally:
        workers.stop_all()
        app.close()

    late_s = timing["started_at"] - timing["eta"]
    print(f"\n6 s countdown across a worker restart on RabbitMQ: {late_s:.3f} s late")
    assert 0 <= late_s <= 1.0, timing
