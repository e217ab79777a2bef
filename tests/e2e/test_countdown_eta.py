"""Countdowns on the embedded SQLite broker: on time, across worker restarts.

Each task (``e2e.started_at``) returns the clock at the start of its body and
the ETA its message carried (the producer's send time + countdown), so
lateness is measured where the task ran, not where its result was read.
"""

from __future__ import annotations

import signal
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from harness import Producer, Workers, worker_env

from petiole import Petiole
from petiole.testing import wait_until

pytestmark = pytest.mark.slow

TASKS = 200
COUNTDOWNS_S = (2.0, 5.0)
# How late a task may start after its ETA on SQLite (the bound).
MAX_LATE_S = 1.0


def send_countdown_tasks(env: dict[str, str], seed: int = 0) -> Producer:
    """A producer of TASKS ``e2e.started_at`` tasks, countdowns spread over COUNTDOWNS_S;
    returns once all are sent."""
    low, high = COUNTDOWNS_S
    options = ["--countdowns", str(low), str(high), "--seed", str(seed)]
    producer = Producer(env, TASKS, 0.0, timeout_s=40, options=options)
    producer.wait_sent()
    return producer


def check_timings(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every task ran, with the ETA its producer computed, never before it."""
    assert summary["missing"] == [], summary
    timings: list[dict[str, Any]] = summary["timings"]
    assert len(timings) == TASKS
    for t in timings:
        # The message carried send time + countdown.
        assert t["sent_before"] + t["countdown"] <= t["eta"] <= t["sent_after"] + t["countdown"], t
        assert t["started_at"] >= t["eta"], f"ran {t['eta'] - t['started_at']:.3f} s early: {t}"
    return timings


def report(name: str, lateness_s: list[float], record_property: Any, **extra: Any) -> str:
    line = (
        f"{name}: tasks={len(lateness_s)} max_late_s={max(lateness_s):.3f} "
        f"median_late_s={statistics.median(lateness_s):.3f} "
        + " ".join(f"{key}={value}" for key, value in extra.items())
    )
    print(f"\n{line}")
    record_property("max_late_s", round(max(lateness_s), 3))
    return line


def test_countdown_tasks_run_on_time_across_a_worker_restart(
    tmp_path: Path, record_property: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    env = worker_env(url, url)
    watcher = Petiole("watch", broker=url, backend=url, config_file="/dev/null")
    workers = Workers(env, tmp_path)
    producer: Producer | None = None
    try:
        old = workers.start("-P", "processes", "-c", "2")
        workers.wait_ready()
        producer = send_countdown_tasks(env)
        # The old worker has run the first due tasks...
        assert wait_until(lambda: watcher.transport.size("default") <= TASKS - 20, timeout_s=15)
        new = workers.start("-P", "threads", "-c", "4")
        workers.wait_ready(procs=[new])
        # ...and is replaced while the later ones are still waiting in the broker.
        pending_at_sigterm = watcher.transport.size("default")
        sigterm_at = time.time()
        old.send_signal(signal.SIGTERM)
        assert old.wait(timeout=30) == 0, workers.logs()
        summary = producer.summary(timeout_s=60)
    finally:
        if producer is not None:
            producer.kill()
        workers.stop_all(timeout_s=10)
        workers.kill_all()
        watcher.close()

    timings = check_timings(summary)
    lateness_s = [t["started_at"] - t["eta"] for t in timings]
    ran_by_new = [t for t in timings if t["worker"].endswith(f":{new.pid}")]
    line = report(
        "countdown across a restart",
        lateness_s,
        record_property,
        pending_at_sigterm=pending_at_sigterm,
        ran_by_old=sum(1 for t in timings if t["worker"].endswith(f":{old.pid}")),
        ran_by_new=len(ran_by_new),
    )
    assert pending_at_sigterm > 0, line
    assert any(t["eta"] > sigterm_at for t in ran_by_new), line
    assert max(lateness_s) <= MAX_LATE_S, line


def test_delayed_tasks_wait_in_the_broker_while_no_worker_runs(
    tmp_path: Path, record_property: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    # A lease far longer than any countdown: had the killed worker reserved the
    # delayed messages to hold them in memory, they could only come back a minute
    # later, and every one of them would be late.
    env = worker_env(url, url, lease_s="60")
    watcher = Petiole("watch", broker=url, backend=url, config_file="/dev/null")
    workers = Workers(env, tmp_path)
    producer: Producer | None = None
    try:
        first = workers.start("-P", "threads", "-c", "4")
        workers.wait_ready()
        producer = send_countdown_tasks(env, seed=1)
        # The first worker has consumed from the queue since the delayed messages
        # arrived (a worker that takes delayed messages would have taken them now).
        assert watcher.send_task("e2e.square", [7]).get(timeout=10) == 49
        # Its result is stored before its message is acknowledged: wait for the ack.
        assert wait_until(lambda: watcher.transport.size("default") == TASKS, timeout_s=10)
        workers.kill(first)
        # No worker runs now, and every task is still in the broker.
        assert watcher.transport.size("default") == TASKS
        second = workers.start("-P", "threads", "-c", "4")
        workers.wait_ready(procs=[second])
        second_ready_at = time.time()
        summary = producer.summary(timeout_s=60)
    finally:
        if producer is not None:
            producer.kill()
        workers.stop_all(timeout_s=10)
        workers.kill_all()
        watcher.close()

    timings = check_timings(summary)
    assert all(t["worker"].endswith(f":{second.pid}") for t in timings)
    # A task that fell due before the new worker was up waited for it, as it must.
    lateness_s = [t["started_at"] - max(t["eta"], second_ready_at) for t in timings]
    line = report(
        "countdown with no worker in between",
        lateness_s,
        record_property,
        due_before_restart=sum(1 for t in timings if t["eta"] < second_ready_at),
    )
    assert max(lateness_s) <= MAX_LATE_S, line
