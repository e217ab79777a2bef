"""Petiole vs Celery vs Dramatiq on one local redis-server: three workloads, one table.

    nox -s bench -- redis          (or: python benchmarks/redis_peers/run.py)

Starts ``redis-server`` on 127.0.0.1 (a free port, a temporary directory,
``--save '' --appendonly no``: no persistence, the same for every system), then,
for each repetition and each system in turn:

* **W1** enqueue ``W1_TASKS`` no-op tasks with no worker running, start the
  system's workers, and time the drain: from the first message acknowledged to
  the last (the runner polls the broker's own bookkeeping every 2 ms, so worker
  start-up is not counted);
* a warm-up (round trips and a small batch, not timed);
* **W2** send ``W2_TASKS`` ``echo(i)`` tasks and wait for every result, timed
  from the first send to the last result;
* **W3** ``W3_ROUND_TRIPS`` sequential round trips (send, wait for the result),
  each timed.

Producers run in their own subprocesses, workers in theirs. Figures are the
median over the repetitions. Environment: ``BENCH_REPS`` (default 3),
``BENCH_SYSTEMS`` (default ``petiole,celery,dramatiq``), ``BENCH_W1_TASKS``,
``BENCH_W2_TASKS``, ``BENCH_W3_ROUND_TRIPS``, ``BENCH_JSON`` (write the raw
figures there).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import redis

HERE = Path(__file__).resolve().parent
# The system modules and ``common`` live here, ``benchkit`` and ``systemkit`` one up.
sys.path[:0] = [str(HERE), str(HERE.parent)]

import benchkit  # noqa: E402
from benchkit import Figure, Runs  # noqa: E402
from systemkit import REDIS_URL_ENV, Figures, env_int  # noqa: E402

W1_TASKS = env_int("BENCH_W1_TASKS", 20000)
W2_TASKS = env_int("BENCH_W2_TASKS", 5000)
W3_ROUND_TRIPS = env_int("BENCH_W3_ROUND_TRIPS", 500)
REPS = env_int("BENCH_REPS", 3)
SYSTEMS = os.environ.get("BENCH_SYSTEMS", "petiole,celery,dramatiq,petiole_processes").split(",")
DISTS = ("petiole", "petiole-redis", "celery", "kombu", "dramatiq", "redis")
WARMUP = 100
POLL_S = 0.002
# Bounds, so a broken system fails the run instead of hanging it.
DRAIN_TIMEOUT_S = 120.0
PRODUCER_TIMEOUT_S = 180.0


# -- processes ----------------------------------------------------------------------------


def _env(url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Every variable of ours passes to the children, plus the system's own
    (``WORKER_ENV``) and the broker's URL."""
    settings = {**(extra or {}), REDIS_URL_ENV: url}
    return benchkit.child_env(HERE, settings, drop_prefix=None)


def start_workers(system: ModuleType, url: str, log: Path) -> list[subprocess.Popen[bytes]]:
    env = _env(url, getattr(system, "WORKER_ENV", None))
    return benchkit.start_workers(system.worker_commands(), folder=HERE, env=env, log=log)


def produce(system: ModuleType, url: str, action: str, n: int) -> Figures:
    return benchkit.run_producer(
        system, action, n, folder=HERE, env=_env(url), timeout_s=PRODUCER_TIMEOUT_S
    )


# -- one repetition of one system ------------------------------------------------------------


def drain(
    system: ModuleType, client: redis.Redis, total: int, cpu: Callable[[], float]
) -> tuple[float, float]:
    """Tasks per second from the first acknowledgement to the last, and CPU
    seconds per task (workers and redis-server) over the same window."""
    window = benchkit.drain_window(
        lambda: system.remaining(client),
        total,
        cpu,
        what=system.NAME,
        timeout_s=DRAIN_TIMEOUT_S,
        poll_s=POLL_S,
    )
    return window.per_s, (window.after - window.before) / window.count


def run_system(system: ModuleType, url: str, redis_pid: int, log: Path) -> Figures:
    client = redis.Redis.from_url(url)
    client.flushall()
    figures: Figures = {}
    enqueued = produce(system, url, "enqueue", W1_TASKS)
    figures["enqueue_per_s"] = enqueued["per_s"]
    queued = system.remaining(client)
    if queued != W1_TASKS:
        raise RuntimeError(f"{system.NAME}: {queued} messages queued, expected {W1_TASKS}")
    workers = start_workers(system, url, log)
    try:
        groups = {w.pid for w in workers}

        def cpu() -> float:
            return benchkit.cpu_seconds(groups, {redis_pid})

        figures["w1_per_s"], w1_cpu = drain(system, client, W1_TASKS, cpu)
        figures["w1_cpu_us"] = w1_cpu * 1e6
        produce(system, url, "warmup", WARMUP)
        before = cpu()
        w2 = produce(system, url, "w2", W2_TASKS)
        figures["w2_per_s"] = W2_TASKS / w2["seconds"]
        figures["w2_cpu_us"] = (cpu() - before + w2["cpu_s"]) / W2_TASKS * 1e6
        w3 = produce(system, url, "w3", W3_ROUND_TRIPS)["latencies_s"]
        cuts = statistics.quantiles(w3, n=100, method="inclusive")
        figures["w3_p50_ms"] = statistics.median(w3) * 1000
        figures["w3_p99_ms"] = cuts[98] * 1000
    finally:
        benchkit.stop_workers(workers)
        client.close()
    return figures


# -- report -------------------------------------------------------------------------------


FIGURES = (
    Figure(f"W1: drain {W1_TASKS:,} no-op tasks, enqueued first", "w1_per_s", "tasks/s", 0, True),
    Figure(
        f"W2: {W2_TASKS:,} tasks, producer waits for every result", "w2_per_s", "tasks/s", 0, True
    ),
    Figure(f"W3: {W3_ROUND_TRIPS} sequential round trips, p50", "w3_p50_ms", "ms", 2, False),
    Figure(f"W3: {W3_ROUND_TRIPS} sequential round trips, p99", "w3_p99_ms", "ms", 2, False),
    Figure("W1 CPU per task: workers + redis-server", "w1_cpu_us", "µs", 0, False),
    Figure("W2 CPU per task: workers + redis-server + producer", "w2_cpu_us", "µs", 0, False),
    Figure("Enqueue rate before W1 (not a target)", "enqueue_per_s", "tasks/s", 0, True),
)


def report(runs: Runs) -> str:
    # Petiole / system even for times (below 1: Petiole is faster), unlike cassandra_peers:
    # the targets in benchmarks/README.md (e.g. W3 p50 <= 0.33x Celery) are stated that way.
    return "\n".join(benchkit.comparison_tables(runs, FIGURES, ratio=benchkit.petiole_over_system))


def main() -> None:
    systems = benchkit.import_systems(SYSTEMS)
    started = time.monotonic()
    benchkit.print_setup(benchkit.versions(DISTS), systems)
    with benchkit.redis_server() as (url, redis_pid):
        print(f"redis-server at {url} (--save '' --appendonly no)", flush=True)
        runs = benchkit.run_rounds(
            systems,
            lambda system, log: run_system(system, url, redis_pid, log),
            reps=REPS,
            warmup_rounds=0,
        )
    print(report(runs))
    benchkit.finish(started, runs)


if __name__ == "__main__":
    main()
