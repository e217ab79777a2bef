"""Petiole vs Celery with results on one local Apache Cassandra node: W2 and a chord.

    nox -s bench -- cassandra          (or: python benchmarks/cassandra_peers/run.py)

Starts one Apache Cassandra 5.0.9 node (``petiole_cassandra.testing.CassandraNode``:
127.0.0.1, free ports, a temporary directory, a 256 MB heap) and one
``redis-server`` as the broker of both systems (a free port, ``--save ''
--appendonly no``), creates each system's keyspace and table, runs one
untimed round of every system (``BENCH_WARMUP_ROUNDS``: the node's JIT warms up;
the first round on a fresh node ran about 30 % slower), then, for each
repetition and each system in turn (interleaved):

* the system's workers start; a warm-up (round trips, a batch and a small
  chord, not timed);
* **W2** send ``W2_TASKS`` ``echo(i)`` tasks one by one and wait for every
  result, timed from the first send to the last result, values checked;
* **chord** ``chord(echo.s(i) for i in range(CHORD_SIZE))(tsum.s())``, timed
  from the send to the callback's result, which is checked.

Producers run in their own subprocesses, workers in theirs. Figures are the
median over the repetitions. Environment: ``BENCH_REPS`` (default 3),
``BENCH_WARMUP_ROUNDS`` (default 1),
``BENCH_SYSTEMS`` (default ``petiole,celery``), ``BENCH_W2_TASKS``,
``BENCH_CHORD_SIZE``, ``BENCH_JSON`` (write the raw figures there), and each
system's worker knobs (see sys_petiole.py, sys_celery.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import redis
from petiole_cassandra.testing import CassandraNode

HERE = Path(__file__).resolve().parent
# The system modules and ``common`` live here, ``benchkit`` and ``systemkit`` one up.
sys.path[:0] = [str(HERE), str(HERE.parent)]

import benchkit  # noqa: E402
from benchkit import Figure, Runs  # noqa: E402
from common import CASSANDRA_ENV  # noqa: E402
from systemkit import REDIS_URL_ENV, Figures, env_int  # noqa: E402

W2_TASKS = env_int("BENCH_W2_TASKS", 5000)
CHORD_SIZE = env_int("BENCH_CHORD_SIZE", 1000)
REPS = env_int("BENCH_REPS", 3)
WARMUP_ROUNDS = env_int("BENCH_WARMUP_ROUNDS", 1)
SYSTEMS = os.environ.get("BENCH_SYSTEMS", "petiole,celery").split(",")
DISTS = (
    *("petiole", "petiole-redis", "petiole-cassandra", "celery", "kombu"),
    *("cassandra-driver", "redis"),
)
WARMUP = 100
# Bounds, so a broken system fails the run instead of hanging it.
PRODUCER_TIMEOUT_S = 300.0
PREPARE_TIMEOUT_S = 120.0


# -- servers ------------------------------------------------------------------------------


@contextlib.contextmanager
def cassandra_node() -> Iterator[CassandraNode]:
    """One Cassandra node in a temporary directory, stopped (SIGTERM) afterwards."""
    with tempfile.TemporaryDirectory(prefix="petiole-bench-cassandra-") as directory:
        node = CassandraNode(Path(directory))
        try:
            yield node.start()
        finally:
            node.stop()


# -- processes ----------------------------------------------------------------------------


def _env(servers: dict[str, str]) -> dict[str, str]:
    # PETIOLE_* settings of the caller's shell would override the benchmark's app settings.
    return benchkit.child_env(HERE, servers, drop_prefix="PETIOLE_")


def prepare(system: ModuleType, servers: dict[str, str]) -> None:
    """The system's keyspace and table, created once before any of its workers start."""
    code = f"import {system.__name__} as s; s.prepare()"
    benchkit.run_python(
        ["-c", code],
        what=f"{system.NAME}: prepare()",
        folder=HERE,
        env=_env(servers),
        timeout_s=PREPARE_TIMEOUT_S,
    )


def produce(system: ModuleType, servers: dict[str, str], action: str, n: int) -> Figures:
    return benchkit.run_producer(
        system, action, n, folder=HERE, env=_env(servers), timeout_s=PRODUCER_TIMEOUT_S
    )


# -- one repetition of one system ------------------------------------------------------------


def run_system(
    system: ModuleType, servers: dict[str, str], server_pids: dict[str, int], log: Path
) -> Figures:
    client = redis.Redis.from_url(servers[REDIS_URL_ENV])
    client.flushall()
    client.close()
    figures: Figures = {}
    workers = benchkit.start_workers(
        system.worker_commands(), folder=HERE, env=_env(servers), log=log
    )
    try:
        # Where W2's CPU goes: the workers (with their pool children), each server.
        parts: dict[str, tuple[set[int], set[int]]] = {"workers": ({w.pid for w in workers}, set())}
        parts.update({name: (set(), {pid}) for name, pid in server_pids.items()})
        produce(system, servers, "warmup", WARMUP)
        before = {name: benchkit.cpu_seconds(*part) for name, part in parts.items()}
        w2 = produce(system, servers, "w2", W2_TASKS)
        figures["w2_per_s"] = W2_TASKS / w2["seconds"]
        spent = {name: benchkit.cpu_seconds(*part) - before[name] for name, part in parts.items()}
        spent["producer"] = w2["cpu_s"]
        for name, seconds in spent.items():
            figures[f"w2_cpu_{name}_us"] = seconds / W2_TASKS * 1e6
        figures["w2_cpu_us"] = sum(spent.values()) / W2_TASKS * 1e6
        figures["chord_s"] = produce(system, servers, "chord", CHORD_SIZE)["seconds"]
    finally:
        benchkit.stop_workers(workers)
    return figures


# -- report -------------------------------------------------------------------------------


FIGURES = (
    Figure(
        f"W2: {W2_TASKS:,} tasks, producer waits for every result", "w2_per_s", "tasks/s", 0, True
    ),
    Figure(f"Chord: {CHORD_SIZE:,} members + callback, send to result", "chord_s", "s", 2, False),
    Figure("W2 CPU per task: workers + redis + Cassandra + producer", "w2_cpu_us", "µs", 0, False),
)
CPU_PARTS = ("workers", "cassandra", "redis", "producer")


def report(runs: Runs) -> str:
    lines = benchkit.comparison_tables(runs, FIGURES, ratio=benchkit.times_faster)
    lines += _cpu_by_process_table(runs)
    lines.append(
        "\n(Petiole / system: how many times faster Petiole is; for times, system / Petiole.)"
    )
    return "\n".join(lines)


def _cpu_by_process_table(runs: Runs) -> list[str]:
    lines = ["", "W2 CPU per task by process (µs, medians)", ""]
    lines.append("| system | " + " | ".join(CPU_PARTS) + " |")
    lines.append("|---|" + "---:|" * len(CPU_PARTS))
    for name, system_runs in runs.items():
        cells = " | ".join(
            f"{benchkit.median(system_runs, f'w2_cpu_{p}_us'):,.0f}" for p in CPU_PARTS
        )
        lines.append(f"| {name} | {cells} |")
    return lines


def main() -> None:
    systems = benchkit.import_systems(SYSTEMS)
    started = time.monotonic()
    benchkit.print_setup(benchkit.versions(DISTS), systems)
    with benchkit.redis_server() as (url, redis_pid), cassandra_node() as node:
        assert node.process is not None
        servers = {REDIS_URL_ENV: url, CASSANDRA_ENV: node.host}
        pids = {"redis": redis_pid, "cassandra": node.process.pid}
        print(f"redis-server at {url}; Cassandra {node.host} ready in {node.started_in_s:.1f} s")
        for system in systems.values():
            prepare(system, servers)
        runs = benchkit.run_rounds(
            systems,
            lambda system, log: run_system(system, servers, pids, log),
            reps=REPS,
            warmup_rounds=WARMUP_ROUNDS,
        )
    print(report(runs))
    benchkit.finish(started, runs)


if __name__ == "__main__":
    main()
