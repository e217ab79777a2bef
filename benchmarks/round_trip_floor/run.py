"""W3's floor: what one round trip costs on this machine with no task queue at all,
beside Petiole's worker configurations, and where each one's CPU goes.

    nox -s bench -- floor          (or: python benchmarks/round_trip_floor/run.py)

On one redis-server (127.0.0.1, no persistence, as the ``redis`` peer benchmark
runs it), each row runs ``BENCH_W3_ROUND_TRIPS`` (3,000) sequential round trips
after 200 untimed ones, the rows alternating over ``BENCH_REPS`` (3) repetitions:

* **raw RESP**: ``raw.py``, hand-written Redis commands over plain sockets (the
  worker blocks in ``XREADGROUP`` and answers ``SET`` + ``PUBLISH``; the producer
  ``XADD``s and waits for the ``PUBLISH``): the operating system's and
  redis-server's share of a round trip, the least any Python task queue on
  Redis can cost;
* **Petiole solo**: ``petiole worker -P solo``, one process;
* **Petiole default**: ``petiole worker`` (one process per CPU);
* **Petiole best**: the ``redis`` peer benchmark's best flags.

For each: p50 and p99, and the CPU (user + system) per round trip of the
producer, of the worker processes and of redis-server. The medians over the
repetitions; each row's times the raw row's. On a machine with fewer cores than
busy processes, CPU per round trip is most of the latency: the figures say which
process to make cheaper.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import benchkit  # noqa: E402
from raw import WARMUP  # noqa: E402
from systemkit import REDIS_URL_ENV, Figures, env_int, petiole_worker  # noqa: E402

ROUND_TRIPS = env_int("BENCH_W3_ROUND_TRIPS", 3000)
REPS = env_int("BENCH_REPS", 3)
TIMEOUT_S = 600.0
APP = "floor_app:app"
BEST = ["--workers", "2", "-P", "solo", "-c", "1", "--prefetch-multiplier", "64"]


@dataclass(frozen=True)
class Row:
    name: str
    worker: Sequence[str]
    producer: Sequence[str]  # python arguments before N; the URL is in the environment
    shown: str


def rows() -> list[Row]:
    raw_producer = ["raw.py", "produce"]
    petiole_producer = ["floor_app.py"]
    return [
        Row("raw RESP", [sys.executable, "raw.py", "worker"], raw_producer, "raw.py"),
        Row(
            "Petiole solo",
            petiole_worker(APP, ["-P", "solo"]),
            petiole_producer,
            f"petiole worker -A {APP} -P solo",
        ),
        Row(
            "Petiole default", petiole_worker(APP, []), petiole_producer, f"petiole worker -A {APP}"
        ),
        Row(
            "Petiole best",
            petiole_worker(APP, BEST),
            petiole_producer,
            f"petiole worker -A {APP} {' '.join(BEST)}",
        ),
    ]


def produce(row: Row, env: dict[str, str], n: int) -> str:
    """Run the row's producer for ``n`` timed round trips (after its warm-up): its output."""
    return benchkit.run_python(
        [*row.producer, str(n)],
        what=f"{row.name} producer",
        folder=HERE,
        env=env,
        timeout_s=TIMEOUT_S,
    )


def run_row(row: Row, url: str, redis_pid: int, log: Path) -> Figures:
    env = benchkit.child_env(HERE, {REDIS_URL_ENV: url}, drop_prefix=None)
    [worker] = benchkit.start_workers([row.worker], folder=HERE, env=env, log=log)
    try:
        # A first producer waits for the first result (the worker's start), so that
        # is not counted in the worker's CPU; the second one is measured.
        produce(row, env, 0)
        before = (
            benchkit.cpu_seconds({worker.pid}, ()),
            benchkit.cpu_seconds((), {redis_pid}),
        )
        out_text = produce(row, env, ROUND_TRIPS)
        workers_s = benchkit.cpu_seconds({worker.pid}, ()) - before[0]
        redis_s = benchkit.cpu_seconds((), {redis_pid}) - before[1]
    finally:
        benchkit.stop_workers([worker])
    figures = json.loads(out_text.strip().splitlines()[-1])
    latencies = figures["latencies_s"]
    trips = len(latencies)
    # The workers' and the server's CPU is counted over the producer's warm-up too.
    all_trips = trips + WARMUP
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": statistics.quantiles(latencies, n=100, method="inclusive")[98] * 1000,
        "producer_us": figures["cpu_s"] / trips * 1e6,
        "workers_us": workers_s / all_trips * 1e6,
        "redis_us": redis_s / all_trips * 1e6,
    }


COLUMNS = (
    ("p50_ms", "p50 ms", 3),
    ("p99_ms", "p99 ms", 3),
    ("producer_us", "producer CPU µs/trip", 0),
    ("workers_us", "workers CPU µs/trip", 0),
    ("redis_us", "redis-server CPU µs/trip", 0),
)


def report(runs: dict[str, list[Figures]]) -> str:
    def median(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[name]))

    lines = [
        "| row | " + " | ".join(title for _, title, _ in COLUMNS) + " | p50 / raw's |",
        "|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    floor = median("raw RESP", "p50_ms")
    for name in runs:
        cells = [f"{median(name, key):,.{digits}f}" for key, _, digits in COLUMNS]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {median(name, 'p50_ms') / floor:.1f}x |"
        )
    lines += ["", "Each repetition's p50 (ms):", ""]
    lines += [
        f"- {name}: " + ", ".join(f"{r['p50_ms']:.3f}" for r in each) for name, each in runs.items()
    ]
    return "\n".join(lines)


def main() -> None:
    table = rows()
    print(benchkit.versions(["petiole", "petiole-redis"]))
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()}")
    for row in table:
        print(f"{row.name}: `{row.shown}`")
    runs: dict[str, list[Figures]] = {row.name: [] for row in table}
    with (
        tempfile.TemporaryDirectory(prefix="petiole-floor-") as logs,
        benchkit.redis_server() as (
            url,
            redis_pid,
        ),
    ):
        log = Path(logs) / "workers.log"
        for rep in range(REPS):
            for row in table:
                figures = run_row(row, url, redis_pid, log)
                runs[row.name].append(figures)
                print(f"rep {rep + 1} {row.name}: p50 {figures['p50_ms']:.3f} ms", flush=True)
    print()
    print(report(runs))


if __name__ == "__main__":
    main()
