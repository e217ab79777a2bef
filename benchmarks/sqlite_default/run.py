"""Petiole on the embedded SQLite default: push wake-ups across processes vs polling.

    nox -s bench -- sqlite          (or: python benchmarks/sqlite_default/run.py)

Each variant runs on a fresh database file in a temporary directory, producers
and workers each in their own process:

* **enqueue** ``W1_TASKS`` ``noop()`` tasks one ``delay()`` at a time, with no
  worker running (rate after the first, which opens the file); then the queue is
  emptied and the same number enqueued inside one ``transport.batch()`` block;
* **W1** the workers start and drain them: timed from the first message
  acknowledged to the last (the runner counts the rows left every 2 ms, so
  worker start-up is not counted), CPU of the workers over the same window;
* a warm-up (round trips and a batch of 100, not timed);
* **W3** ``W3_ROUND_TRIPS`` sequential ``echo.delay(i).get()``, each timed.

The variants: ``notify=off`` (the polling of earlier releases: 5 ms backing off
to ``poll_interval_ms``) and ``notify=auto`` (the default: waiters in other
processes woken by a datagram), each with ``petiole worker``'s default flags and
with the best flags found on this machine (``BENCH_SQLITE_BEST``). Repetitions
interleave the variants, so that other work on the machine hits them alike.
Environment: ``BENCH_REPS`` (default 3), ``BENCH_W1_TASKS`` (20,000),
``BENCH_W3_ROUND_TRIPS`` (500), ``BENCH_SQLITE_BEST`` (default ``-P solo
--prefetch-multiplier 64``), ``BENCH_SQLITE_VARIANTS`` (a comma-separated subset
of the variant names), ``BENCH_JSON``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import benchkit  # noqa: E402
from benchkit import Figure  # noqa: E402
from systemkit import Figures, env_int, petiole_worker  # noqa: E402

W1_TASKS = env_int("BENCH_W1_TASKS", 20000)
W3_ROUND_TRIPS = env_int("BENCH_W3_ROUND_TRIPS", 500)
REPS = env_int("BENCH_REPS", 3)
BEST_FLAGS = shlex.split(os.environ.get("BENCH_SQLITE_BEST", "-P solo --prefetch-multiplier 64"))
DISTS = ("petiole",)
WARMUP = 100
POLL_S = 0.002
# Bounds, so a broken variant fails the run instead of hanging it.
DRAIN_TIMEOUT_S = 180.0
PRODUCER_TIMEOUT_S = 180.0
QUEUE = "default"


@dataclass(frozen=True)
class Variant:
    """One row of the tables: how waiters wake, and the worker's flags."""

    NAME: str
    notify: str
    flags: tuple[str, ...]

    def config(self) -> str:
        flags = " ".join(self.flags) or "(no flags)"
        return f"1 x `petiole worker {flags}`, ?notify={self.notify}"


VARIANTS = {
    v.NAME: v
    for v in (
        Variant("poll + default flags", "off", ()),
        Variant("notify + default flags", "auto", ()),
        Variant("poll + best flags", "off", tuple(BEST_FLAGS)),
        Variant("notify + best flags", "auto", tuple(BEST_FLAGS)),
    )
}
CHOSEN = [
    VARIANTS[name.strip()]
    for name in os.environ.get("BENCH_SQLITE_VARIANTS", ",".join(VARIANTS)).split(",")
]


def _queued(conn: sqlite3.Connection) -> int:
    query = "SELECT COUNT(*) FROM petiole_messages WHERE queue = ?"
    return int(conn.execute(query, (QUEUE,)).fetchall()[0][0])


def _count(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return _queued(conn)


def _purge(db: Path) -> None:
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute("DELETE FROM petiole_messages")


def drain(db: Path, total: int, cpu: Callable[[], float]) -> tuple[float, float]:
    """Tasks per second from the first acknowledgement to the last, and CPU seconds
    per task of the workers over the same window."""
    with sqlite3.connect(db, timeout=30) as conn:
        window = benchkit.drain_window(
            lambda: _queued(conn),
            total,
            cpu,
            what="petiole on sqlite",
            timeout_s=DRAIN_TIMEOUT_S,
            poll_s=POLL_S,
        )
    return window.per_s, (window.after - window.before) / window.count


def run_variant(variant: Variant, log: Path) -> Figures:
    with tempfile.TemporaryDirectory(prefix="petiole-bench-sqlite-") as folder:
        db = Path(folder) / "petiole.db"
        env = benchkit.child_env(
            HERE, {"BENCH_SQLITE_URL": f"sqlite:///{db}?notify={variant.notify}"}, drop_prefix=None
        )

        def produce(action: str, n: int) -> Figures:
            out = benchkit.run_python(
                ["sys_sqlite.py", action, str(n)],
                what=f"{variant.NAME} producer {action}",
                folder=HERE,
                env=env,
                timeout_s=PRODUCER_TIMEOUT_S,
            )
            return dict(json.loads(out.strip().splitlines()[-1]))

        figures: Figures = {"enqueue_per_s": produce("enqueue", W1_TASKS)["per_s"]}
        _purge(db)
        figures["enqueue_batch_per_s"] = produce("enqueue_batch", W1_TASKS)["per_s"]
        if _count(db) != W1_TASKS:
            raise RuntimeError(f"{_count(db)} messages queued, expected {W1_TASKS}")
        command = petiole_worker("sys_sqlite:app", [*variant.flags])
        workers = benchkit.start_workers([command], folder=HERE, env=env, log=log)
        try:
            groups = {w.pid for w in workers}
            figures["w1_per_s"], w1_cpu = drain(
                db, W1_TASKS, lambda: benchkit.cpu_seconds(groups, ())
            )
            figures["w1_cpu_us"] = w1_cpu * 1e6
            produce("warmup", WARMUP)
            w3 = produce("w3", W3_ROUND_TRIPS)["latencies_s"]
            cuts = statistics.quantiles(w3, n=100, method="inclusive")
            figures["w3_p50_ms"] = statistics.median(w3) * 1000
            figures["w3_p99_ms"] = cuts[98] * 1000
        finally:
            benchkit.stop_workers(workers)
    return figures


FIGURES = (
    Figure(f"W1: drain {W1_TASKS:,} no-op tasks, enqueued first", "w1_per_s", "tasks/s", 0, True),
    Figure(f"W3: {W3_ROUND_TRIPS} sequential round trips, p50", "w3_p50_ms", "ms", 2, False),
    Figure(f"W3: {W3_ROUND_TRIPS} sequential round trips, p99", "w3_p99_ms", "ms", 2, False),
    Figure("W1 CPU per task: the worker and its pool children", "w1_cpu_us", "µs", 0, False),
    Figure("Enqueue, one delay() at a time", "enqueue_per_s", "tasks/s", 0, True),
    Figure("Enqueue, all in one batch() block", "enqueue_batch_per_s", "tasks/s", 0, True),
)


def _better(base: float, value: float, figure: Figure) -> float:
    """How many times better ``value`` is than ``base`` (above 1: better)."""
    return value / base if figure.higher_is_better else base / value


def main() -> None:
    started = time.monotonic()
    found = {"python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version}
    found.update((dist, importlib.metadata.version(dist)) for dist in DISTS)
    print("versions:", found)
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()}")
    for variant in CHOSEN:
        print(f"{variant.NAME}: {variant.config()}")
    systems = {v.NAME: v for v in CHOSEN}
    runs = benchkit.run_rounds(systems, run_variant, reps=REPS, warmup_rounds=0)
    # One column per polling row: how many times better each row is than it.
    bases = [v.NAME for v in CHOSEN if v.notify == "off"]
    print("\n".join(benchkit.comparison_tables(runs, FIGURES, ratio=_better, bases=bases)))
    benchkit.finish(started, runs)


if __name__ == "__main__":
    main()
