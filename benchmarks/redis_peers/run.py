"""Petiole vs Celery, Dramatiq, taskiq, arq and RQ on one local redis-server, each with
its default flags and with its best ones: three workloads, one table.

    nox -s bench -- redis          (or: python benchmarks/redis_peers/run.py)

Starts ``redis-server`` on 127.0.0.1 (a free port, a temporary directory,
``--save '' --appendonly no``: no persistence, the same for every system), then,
for each repetition and each row (a system with one of its two sets of flags, see
``common.Flags``) in turn:

* **W1** enqueue ``W1_TASKS`` no-op tasks with no worker running, start the
  system's workers, and time the drain: from the first message acknowledged to
  the last (the runner polls the broker's own bookkeeping every 2 ms, so worker
  start-up is not counted);
* a warm-up (round trips and a small batch, not timed);
* **W2** send ``W2_TASKS`` ``echo(i)`` tasks one by one and wait for every result,
  timed from the first send to the last result; **W2 batch** the same, sent with
  the system's own call for many tasks (a group, ``delay_many``, ``enqueue_many``;
  one by one for a system without one);
* **W3** ``W3_ROUND_TRIPS`` sequential round trips (send, wait for the result),
  each timed.

Beside each: the workers' CPU per task (user + system of every worker process and
the children they reaped, from ``/proc``), Redis commands per task (``INFO
commandstats`` over the same window, the runner's own polls taken out), and at the
end the workers' peak RSS and their PSS (shared pages counted once). A row whose
system runs tens of tasks a second runs ``Flags.scale`` times the sizes (rates stay
comparable).

Producers run in their own subprocesses, workers in theirs. Figures are the
median over the repetitions. Environment: ``BENCH_REPS`` (default 3),
``BENCH_SYSTEMS`` (default ``petiole,celery,dramatiq,taskiq,arq,rq``),
``BENCH_FLAG_SETS`` (default ``default,best``), ``BENCH_W1_TASKS``,
``BENCH_W2_TASKS``, ``BENCH_W3_ROUND_TRIPS``, ``BENCH_JSON`` (write the raw figures
there), and each system module's own.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import redis

HERE = Path(__file__).resolve().parent
# The system modules and ``common`` live here, ``benchkit`` and ``systemkit`` one up.
sys.path[:0] = [str(HERE), str(HERE.parent)]

import benchkit  # noqa: E402
import report  # noqa: E402
from benchkit import Runs  # noqa: E402
from common import FLAGS_ENV, Flags, commands_between, commands_by_name  # noqa: E402
from systemkit import REDIS_URL_ENV, Figures, env_int  # noqa: E402

W1_TASKS = env_int("BENCH_W1_TASKS", 20000)
W2_TASKS = env_int("BENCH_W2_TASKS", 5000)
W3_ROUND_TRIPS = env_int("BENCH_W3_ROUND_TRIPS", 500)
REPS = env_int("BENCH_REPS", 3)
SYSTEMS = os.environ.get("BENCH_SYSTEMS", "petiole,celery,dramatiq,taskiq,arq,rq").split(",")
FLAG_SETS = os.environ.get("BENCH_FLAG_SETS", "default,best").split(",")
DISTS = (
    *("petiole", "petiole-redis", "celery", "kombu", "dramatiq", "taskiq", "taskiq-redis"),
    *("arq", "rq", "redis"),
)
WARMUP = 100
# The fewest tasks a scaled-down row runs per workload (W3 needs enough for a p99).
MIN_TASKS = 40
MIN_WARMUP = 10
POLL_S = 0.002
# How many polls the runner sends to learn how many commands one costs.
CALIBRATION_POLLS = 4
# Bounds, so a broken system fails the run instead of hanging it.
DRAIN_TIMEOUT_S = 120.0
PRODUCER_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Row:
    """One row of the table: a system with one set of its flags."""

    system: ModuleType
    flags_name: str  # "default" or "best"

    @property
    def name(self) -> str:
        return f"{self.system.NAME} {self.flags_name}"

    @property
    def flags(self) -> Flags:
        flags: Flags = self.system.FLAGS[self.flags_name]
        return flags

    def size(self, n: int, least: int = MIN_TASKS) -> int:
        """A workload's size for this row (``n`` scaled, at least ``least``)."""
        return min(n, max(least, round(n * self.flags.scale)))


# -- processes ----------------------------------------------------------------------------


def _env(url: str, row: Row, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every variable of ours passes to the children, plus the row's flags (and for the
    workers, the system's own variables) and the broker's URL."""
    settings = {**(extra or {}), FLAGS_ENV: row.flags_name, REDIS_URL_ENV: url}
    return benchkit.child_env(HERE, settings, drop_prefix=None)


def start_workers(row: Row, url: str, log: Path) -> list[subprocess.Popen[bytes]]:
    env = _env(url, row, row.flags.env)
    return benchkit.start_workers(row.flags.commands, folder=HERE, env=env, log=log)


def produce(row: Row, url: str, action: str, n: int) -> Figures:
    return benchkit.run_producer(
        row.system, action, n, folder=HERE, env=_env(url, row), timeout_s=PRODUCER_TIMEOUT_S
    )


# -- the runner's polls, taken out of the command counts ------------------------------------


class Polls:
    """``remaining()`` of a system, counting its calls; ``commands_each`` is which Redis
    commands one call sends, how many of each (measured: ``calibrate``)."""

    def __init__(self, row: Row, client: redis.Redis) -> None:
        self._row, self._client = row, client
        self.count = 0
        self.commands_each: dict[str, float] = {}

    def __call__(self) -> int:
        self.count += 1
        return int(self._row.system.remaining(self._client))

    def calibrate(self) -> int:
        """Poll a few times with no worker running (nothing else sends a command);
        returns what the polls answered."""
        before = commands_by_name(self._client)
        answers = {self() for _ in range(CALIBRATION_POLLS)}
        sent = commands_between(before, commands_by_name(self._client))
        self.commands_each = {name: calls / CALIBRATION_POLLS for name, calls in sent.items()}
        if len(answers) != 1:
            raise RuntimeError(f"{self._row.name}: queue moved with no worker: {answers}")
        return answers.pop()


@dataclass(frozen=True)
class Sample:
    """What the drain window compares at its start and end."""

    worker_cpu_s: float
    redis_cpu_s: float
    commands: dict[str, int]
    polls: int


# -- one repetition of one row ----------------------------------------------------------------


def run_row(row: Row, url: str, redis_pid: int, log: Path) -> Figures:
    client = redis.Redis.from_url(url)
    client.flushall()
    client.config_resetstat()
    figures: Figures = {}
    w1_tasks = row.size(W1_TASKS)
    figures["enqueue_per_s"] = produce(row, url, "enqueue", w1_tasks)["per_s"]
    polls = Polls(row, client)
    queued = polls.calibrate()
    if queued != w1_tasks:
        raise RuntimeError(f"{row.name}: {queued} messages queued, expected {w1_tasks}")
    workers = start_workers(row, url, log)
    try:
        groups = {w.pid for w in workers}

        def worker_cpu() -> float:
            return benchkit.cpu_seconds(groups, ())

        def remaining() -> int:
            ended = [w.args for w in workers if w.poll() is not None]
            if ended:  # fail now, not at the drain's timeout
                raise RuntimeError(f"{row.name}: a worker exited: {ended}")
            return polls()

        figures.update(drain(row, client, polls, remaining, w1_tasks, worker_cpu, redis_pid))
        produce(row, url, "warmup", row.size(WARMUP, least=MIN_WARMUP))
        figures.update(with_results(row, url, worker_cpu))
        figures.update(round_trips(row, url))
        rss, processes = benchkit.peak_rss_bytes(groups)
        figures["rss_mb"], figures["worker_processes"] = rss / 2**20, processes
        figures["pss_mb"] = benchkit.pss_bytes(groups) / 2**20
    finally:
        benchkit.stop_workers(workers)
        client.close()
    return figures


def drain(
    row: Row,
    client: redis.Redis,
    polls: Polls,
    remaining: Callable[[], int],
    total: int,
    worker_cpu: Callable[[], float],
    redis_pid: int,
) -> Figures:
    """W1: tasks per second from the first acknowledgement to the last; the workers'
    and redis-server's CPU and the commands per task over the same window
    (``remaining`` calls ``polls``, whose commands are taken out)."""

    def sample() -> Sample:
        return Sample(
            worker_cpu(),
            benchkit.cpu_seconds((), {redis_pid}),
            commands_by_name(client),
            polls.count,
        )

    window = benchkit.drain_window(
        remaining, total, sample, what=row.name, timeout_s=DRAIN_TIMEOUT_S, poll_s=POLL_S
    )
    before, after = window.before, window.after
    counted = commands_between(before.commands, after.commands)
    for name, each in polls.commands_each.items():
        counted[name] = round(counted.get(name, 0) - (after.polls - before.polls) * each)
    counted = {name: calls for name, calls in counted.items() if calls}
    return {
        "w1_tasks": total,
        "w1_window_tasks": window.count,
        "w1_per_s": window.per_s,
        "w1_cpu_us": (after.worker_cpu_s - before.worker_cpu_s) / window.count * 1e6,
        "w1_redis_cpu_us": (after.redis_cpu_s - before.redis_cpu_s) / window.count * 1e6,
        "w1_cmds": sum(counted.values()) / window.count,
        "w1_cmds_by_name": counted,
    }


def with_results(row: Row, url: str, worker_cpu: Callable[[], float]) -> Figures:
    """W2 (sent one by one) and W2 batch (sent with the system's batch call): tasks
    per second with every result waited for; the workers' CPU and the commands (all
    clients) per task."""
    n = row.size(W2_TASKS)
    figures: Figures = {"w2_tasks": n}
    for action, prefix in (("w2", "w2"), ("w2batch", "w2b")):
        before = worker_cpu()
        w2 = produce(row, url, action, n)
        figures.update(
            {
                f"{prefix}_per_s": n / w2["seconds"],
                f"{prefix}_cpu_us": (worker_cpu() - before) / n * 1e6,
                f"{prefix}_cmds": w2["commands"] / n,
                f"{prefix}_cmds_by_name": w2["commands_by_name"],
            }
        )
    return figures


def round_trips(row: Row, url: str) -> Figures:
    """W3: p50 and p99 of sequential round trips, and the commands per round trip."""
    n = row.size(W3_ROUND_TRIPS)
    w3 = produce(row, url, "w3", n)
    latencies = w3["latencies_s"]
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "w3_round_trips": n,
        "w3_p50_ms": statistics.median(latencies) * 1000,
        "w3_p99_ms": cuts[98] * 1000,
        "w3_cmds": w3["commands"] / n,
        "w3_cmds_by_name": w3["commands_by_name"],
    }


# -- main ---------------------------------------------------------------------------------------


def rows() -> Iterator[Row]:
    systems = benchkit.import_systems(SYSTEMS)
    for system, flags_name in itertools.product(systems.values(), FLAG_SETS):
        yield Row(system, flags_name)


def main() -> None:
    table = {row.name: row for row in rows()}
    to_run = {name: row for name, row in table.items() if row.flags.same_as is None}
    started = time.monotonic()
    print("versions:", benchkit.versions(DISTS))
    print(report.machine())
    for row in table.values():
        print(report.setup_line(row.name, row.flags))
    with benchkit.redis_server() as (url, redis_pid):
        print(f"redis-server at {url} (--save '' --appendonly no)", flush=True)
        runs: Runs = benchkit.run_rounds(
            to_run,
            lambda row, log: run_row(row, url, redis_pid, log),
            reps=REPS,
            warmup_rounds=0,
            name_of=lambda row: row.name,
        )
    for name, row in table.items():
        if row.flags.same_as is not None:
            runs[name] = runs[f"{row.system.NAME} {row.flags.same_as}"]
    print(report.tables(runs, list(table)))
    benchkit.finish(started, runs)


if __name__ == "__main__":
    main()
