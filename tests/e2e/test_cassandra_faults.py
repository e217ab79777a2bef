"""Faults with results on a real Apache Cassandra node, in worker processes (broker: SQLite).

* The node restarted in the middle of 1,000 tasks: every result is stored and
  readable afterwards, each backend reconnects on its own and logs the outage
  in one line.
* A result larger than Cassandra accepts in one write: the worker says so and
  keeps running.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import HERE, Producer, Workers, produce_until_under_way, worker_env

from petiole import Petiole
from petiole.loading import load_app
from petiole.testing import wait_until
from petiole.testing.servers import require_module

pytestmark = pytest.mark.slow

APPS = Path(__file__).resolve().parents[2] / "plugins" / "petiole-cassandra" / "tests" / "apps"
OUTAGE_LINE = "cluster unreachable"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A node of this module's own: the restart test restarts it."""
    require_module("petiole_cassandra", install_hint="pip install -e plugins/petiole-cassandra")
    from petiole_cassandra.testing import own_node

    with own_node(tmp_path_factory.mktemp("cassandra")) as started:
        yield started


def test_node_restarted_mid_run_loses_no_result_and_logs_one_line_per_outage(
    node: object, tmp_path: Path
) -> None:
    from petiole_cassandra.testing import CassandraNode

    assert isinstance(node, CassandraNode)
    backend_url = node.url("petiole_e2e", reconnect_timeout_s=120)
    env = worker_env(f"sqlite:///{tmp_path / 'p.db'}", backend_url, lease_s="3")
    watcher = Petiole("watch", broker=env["PETIOLE_BROKER_URL"], backend=backend_url)
    # Thread pools: one backend (one connection pool) per worker process, so one
    # outage line per worker.
    workers = Workers(env, tmp_path)
    producer: Producer | None = None
    try:
        workers.start("-P", "threads", "-c", "4")
        workers.start("-P", "threads", "-c", "4")
        workers.wait_ready()
        producer = produce_until_under_way(
            env,
            workers,
            lambda: watcher.transport.size("default"),
            task_delay_s=0.01,
            timeout_s=240,
        )
        down_at = time.monotonic()
        node.stop()  # SIGTERM: Cassandra drains and stops; results keep coming
        assert wait_until(
            lambda: all(OUTAGE_LINE in workers.log(i) for i in range(2)), timeout_s=30
        ), workers.logs()
        node.start()
        restart_s = time.monotonic() - down_at
        summary = producer.summary(timeout_s=240)
    finally:
        if producer is not None:
            producer.kill()
        codes = workers.stop_all()
        watcher.close()

    assert summary["correct"] == 1000, (summary, workers.logs())
    assert summary["missing"] == [], summary
    assert summary["wrong"] == [], summary
    assert restart_s > 3, "the node was not down long enough to matter"
    for index in range(2):
        log = workers.log(index)
        outages = [line for line in log.splitlines() if OUTAGE_LINE in line]
        assert len(outages) == 1, outages
        assert re.search(r"cassandra result backend cassandra://127\.0\.0\.1:\d+/", outages[0])
        assert "reconnected after" in log, log[-3000:]
        # The workers rode the outage out inside the backend: no task was requeued
        # for a failed store.
        assert "could not store the result" not in log, log[-3000:]
    assert codes == [0, 0], workers.logs()


def test_result_larger_than_cassandra_accepts_fails_the_task_and_the_worker_keeps_running(
    node: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from petiole_cassandra.testing import CassandraNode

    assert isinstance(node, CassandraNode)
    # The client-side limit is lifted, so it is the server that refuses the write
    # (over max_mutation_size, 16 MiB: half the 32 MiB commit log segment).
    backend_url = node.url("petiole_e2e", max_result_bytes=64 * 1024 * 1024)
    env = worker_env(f"sqlite:///{tmp_path / 'p.db'}", backend_url, lease_s="3", max_deliveries="2")
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{APPS}"
    monkeypatch.syspath_prepend(str(APPS))
    app = load_app("cassandra_app")
    app.configure(broker_url=env["PETIOLE_BROKER_URL"], backend_url=backend_url)
    log = tmp_path / "worker0.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "petiole", "worker", "-A", "cassandra_app", "-P", "threads"],
            cwd=HERE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        huge = app.tasks["cass.huge"].delay(20 * 1024 * 1024)
        refused = "bytes is more than the cassandra result backend"
        assert wait_until(lambda: refused in log.read_text(errors="replace"), timeout_s=60), (
            log.read_text()
        )
        # The worker is alive and keeps working.
        assert app.tasks["cass.square"].delay(7).get(timeout=60) == 49
        assert worker.poll() is None
        text = log.read_text(errors="replace")
        assert "Rejected an oversized mutation" in text, text[-3000:]
        # Recorded as the task's failure (a small record that fits), not retried.
        record = app.backend.get(huge.id)
        assert record is not None
        assert record.state == "FAILURE"
    finally:
        worker.terminate()
        worker.wait(30)
        app.close()
