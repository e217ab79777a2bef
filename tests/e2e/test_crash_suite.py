"""Crash suite: workers SIGKILLed at random, about once a second, while 2,000 tasks run,
on the embedded SQLite default and on Redis's streams layout.

At-least-once means a task may run twice (its worker died after it started but
before it was acknowledged) but never zero times. Every execution appends a
line to a file, so duplicates are counted, not guessed, and reported.

The kill schedule and victims come from ``random.Random(seed)``; the seed is
printed, and ``PETIOLE_TEST_CRASH_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Producer, Workers, worker_env

from petiole import Petiole
from petiole.testing import wait_until
from petiole.testing.servers import serve

pytestmark = pytest.mark.slow

SEED_ENV = "PETIOLE_TEST_CRASH_SEED"
TASKS = 2000
TASK_S = 0.01
# Sends are spread over most of the kill window, so workers die while there is work.
SEND_OVER_S = 15.0
KILL_WINDOW_S = 20.0
KILL_EVERY_S = (0.5, 1.5)  # uniform: about once a second
# Short leases bring a killed worker's tasks back promptly; a message whose workers
# are killed again and again must not be dead-lettered.
LEASE_S = 3
MAX_DELIVERIES = 50
# The whole test stops by itself within this, whatever happens.
HARD_DEADLINE_S = 90.0
# Each slot holds one worker; a killed worker is replaced with the same pool.
SLOTS: tuple[tuple[str, ...], ...] = (
    ("-P", "processes", "-c", "2"),
    ("-P", "threads", "-c", "4"),
    ("-P", "processes", "-c", "2"),
)
# A kill can repeat only what had started and was not yet acknowledged on the
# victim: at most its concurrency. The factor 2 leaves room for a lease lost to a
# stall on a loaded machine.
MAX_CONCURRENCY = 4
DUPLICATES_PER_KILL_BOUND = 2 * MAX_CONCURRENCY


@pytest.fixture(params=["sqlite", "redis-streams"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(broker, backend): the embedded default, and Redis (its default, the streams layout)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'p.db'}"
        yield url, url
        return
    pytest.importorskip("petiole_redis", reason="petiole-redis is not installed")
    from petiole_redis.testing import RedisServer  # here: only where the plugin is

    (tmp_path / "redis").mkdir()
    for server in serve(RedisServer(tmp_path / "redis")):
        yield f"{server.url}?layout=streams", server.url


def test_workers_sigkilled_every_second_lose_no_task_and_duplicates_are_bounded(
    tmp_path: Path, record_property: Any, urls: tuple[str, str]
) -> None:
    started = time.monotonic()
    deadline = started + HARD_DEADLINE_S
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    print(f"\ncrash suite: seed={seed} (replay with {SEED_ENV}={seed})")
    record_property("seed", seed)

    broker, backend = urls
    env = worker_env(broker, backend, lease_s=str(LEASE_S), max_deliveries=str(MAX_DELIVERIES))
    executions_log = tmp_path / "executions.log"
    watcher = Petiole("watch", broker=broker, backend=backend, config_file="/dev/null")
    workers = Workers(env, tmp_path)
    producer: Producer | None = None
    kills: list[tuple[float, int, int]] = []  # (seconds into the run, slot, queue size)
    try:
        slots = [workers.start(*args) for args in SLOTS]
        workers.wait_ready(timeout_s=30)
        producer = Producer(
            env,
            TASKS,
            TASK_S,
            timeout_s=deadline - time.monotonic() - 15,
            options=["--log", str(executions_log), "--send-over-s", str(SEND_OVER_S)],
        )
        kill_until = time.monotonic() + KILL_WINDOW_S
        while True:
            pause_s = rng.uniform(*KILL_EVERY_S)
            if time.monotonic() + pause_s > kill_until:
                break
            time.sleep(pause_s)  # the kill schedule itself
            # Only a worker that is consuming: killing one still starting proves little.
            ready = [i for i, proc in enumerate(slots) if workers.is_ready(proc)]
            if not ready:
                continue
            victim = rng.choice(ready)
            workers.kill(slots[victim])
            kills.append((time.monotonic() - started, victim, watcher.transport.size("default")))
            slots[victim] = workers.start(*SLOTS[victim])

        summary = producer.summary(timeout_s=max(deadline - time.monotonic() - 10, 1))
        assert summary["missing"] == [], (summary, workers.logs())
        assert summary["wrong"] == [], summary
        assert summary["correct"] == TASKS, summary
        # Redeliveries of tasks whose result was stored but not acknowledged finish too.
        assert wait_until(
            lambda: watcher.transport.size("default") == 0,
            timeout_s=max(min(3 * LEASE_S + 10, deadline - time.monotonic() - 5), 1),
        ), (watcher.transport.size("default"), workers.logs())
        dead = watcher.transport.dead_letters("default")
        # A worker replaced at the last kill may still be starting: SIGTERM would kill it.
        workers.wait_ready(timeout_s=max(deadline - time.monotonic() - 5, 1), procs=slots)
        workers.stop_all(timeout_s=10)
        codes = [proc.returncode for proc in slots]
    finally:
        if producer is not None:
            producer.kill()
        workers.kill_all()
        watcher.close()

    runs = Counter(line.split()[0] for line in executions_log.read_text().splitlines())
    arguments = {int(line.split()[1]) for line in executions_log.read_text().splitlines()}
    executions = sum(runs.values())
    duplicates = executions - len(runs)
    seconds = time.monotonic() - started
    report = (
        f"crash suite: seed={seed} tasks={TASKS} kills={len(kills)} "
        f"kills_with_work={sum(1 for *_, size in kills if size > 0)} "
        f"executions={executions} duplicates={duplicates} "
        f"max_runs_of_one_task={max(runs.values())} lost={TASKS - len(runs)} "
        f"dead_letters={len(dead)} seconds={seconds:.1f}"
    )
    print(report)
    for name, value in (("kills", len(kills)), ("duplicates", duplicates), ("seconds", seconds)):
        record_property(name, value)

    assert arguments == set(range(TASKS)), report
    assert len(runs) == TASKS, report
    assert dead == [], [d.reason for d in dead]
    # The survivors stopped cleanly on SIGTERM.
    assert codes == [0] * len(SLOTS), workers.logs()
    # About once a second for 20 s, most of them while tasks were waiting.
    assert len(kills) >= KILL_WINDOW_S / 2, report
    assert sum(1 for *_, size in kills if size > 0) >= len(kills) / 2, report
    assert duplicates <= DUPLICATES_PER_KILL_BOUND * len(kills), report
