"""SIGTERM to a worker process holding running and prefetched tasks."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from harness import Workers, worker_env

from petiole import Petiole
from petiole.testing import wait_until

pytestmark = pytest.mark.slow

TASK_S = 1.5


def test_sigterm_finishes_running_tasks_and_hands_prefetched_ones_over_at_once(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    # A long lease: any quick pickup below is the shutdown's doing, not lease expiry.
    env = worker_env(url, url, lease_s="60")
    producer = Petiole("producer", broker=url, backend=url, config_file="/dev/null")
    results = [producer.send_task("e2e.slow_square", [i, TASK_S]) for i in range(52)]
    workers = Workers(env, tmp_path)
    holder = workers.start("-P", "threads", "-c", "2", "--prefetch-multiplier", "26")
    try:
        workers.wait_ready()
        # The holder has leased all 52: 2 running, 50 prefetched.
        assert wait_until(
            lambda: (
                producer.transport.reserve(["default"], max_messages=1, wait_s=0, lease_s=60) == []
            ),
            timeout_s=10,
        )
        taker = workers.start("-P", "threads", "-c", "10")
        workers.wait_ready()
        sigterm_at = time.time()
        holder.send_signal(signal.SIGTERM)
        assert holder.wait(timeout=30) == 0, workers.logs()
        values = [r.get(timeout=60) for r in results]
    finally:
        workers.stop_all()
    assert values == [i * i for i in range(52)]
    by_worker: dict[str, list[float]] = {}
    for r in results:
        by_worker.setdefault(str(r.app.backend.get(r.id).meta["worker"]), []).append(r.date_done)
    holder_done = by_worker.pop(f"{holder_hostname(workers, 0)}")
    assert len(holder_done) == 2, by_worker
    [taker_done] = by_worker.values()
    assert len(taker_done) == 50
    # The taker started its first batch within a second of the SIGTERM.
    assert min(taker_done) - TASK_S - sigterm_at < 1.0
    assert taker.poll() is None or taker.returncode == 0


def holder_hostname(workers: Workers, index: int) -> str:
    line = next(line for line in workers.log(index).splitlines() if " ready: " in line)
    return line.split("worker ", 1)[1].split(" ready:", 1)[0]
