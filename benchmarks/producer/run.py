"""Producer throughput: one by one (``delay``) vs ``delay_many`` vs ``app.sending_in_batches()``.

One process enqueues ``BENCH_PRODUCER_TASKS`` no-op tasks (no worker runs) each
way, on Redis and on the SQLite default, and prints for each the enqueue rate
(wall clock) and the producer's CPU per task (``time.process_time()``), the
median of ``BENCH_REPS`` repetitions, and each way's rate against one by one.

Redis runs twice: durable (``appendfsync always``, as ``petiole_redis.testing``
starts it: a reply means the write is on disk) and without persistence
(``appendonly no``, as the ``redis`` peer benchmark runs it). ``--profile``
also prints where ``delay()``'s time goes on Redis (cProfile, top functions).

    nox -s bench -- producer
    python benchmarks/producer/run.py [--profile]
"""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from petiole_redis.testing import RedisServer

from petiole import Petiole, Task

TASKS = int(os.environ.get("BENCH_PRODUCER_TASKS", "20000"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
BATCH = int(os.environ.get("BENCH_PRODUCER_BATCH", "500"))


def noop_app(broker: str) -> tuple[Petiole, Task[..., None]]:
    app = Petiole("bench-producer", broker=broker, backend="memory://", config_file=os.devnull)

    @app.task(name="noop")
    def noop(i: int) -> None:
        pass

    return app, noop


def one_by_one(app: Petiole, task: Task[..., None], n: int) -> None:
    for i in range(n):
        task.delay(i)


def delay_many(app: Petiole, task: Task[..., None], n: int) -> None:
    task.delay_many(((i,) for i in range(n)), batch_size=BATCH)


def sending_block(app: Petiole, task: Task[..., None], n: int) -> None:
    with app.sending_in_batches():
        for i in range(n):
            task.delay(i)


WAYS: dict[str, Callable[[Petiole, Task[..., None], int], None]] = {
    "one by one: delay()": one_by_one,
    f"delay_many(batch_size={BATCH})": delay_many,
    "app.sending_in_batches() + delay()": sending_block,
}


def measure(broker: str, n: int) -> dict[str, tuple[float, float]]:
    """Per way: (tasks/s, CPU µs per task), medians of REPS runs."""
    app, task = noop_app(broker)
    figures: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
    try:
        task.delay(-1)  # connects; not timed
        for _ in range(REPS):
            for way, run in WAYS.items():  # interleaved: noise falls on every way
                app.transport.purge("default")
                cpu, wall = time.process_time(), time.perf_counter()
                run(app, task, n)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if app.transport.size("default") != n:
                    raise SystemExit(f"{way}: {app.transport.size('default')} stored, not {n}")
                figures[way].append((n / wall, cpu / n * 1e6))
    finally:
        app.transport.purge("default")
        app.close()
    return {
        way: (statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs))
        for way, runs in figures.items()
    }


def print_table(title: str, results: dict[str, tuple[float, float]]) -> None:
    base = results["one by one: delay()"][0]
    print(f"\n{title}\n")
    print("| way | tasks/s | CPU µs/task | vs one by one |")
    print("|---|---:|---:|---:|")
    for way, (rate, cpu) in results.items():
        print(f"| {way} | {rate:,.0f} | {cpu:.1f} | {rate / base:.2f}x |")


def profile_delay(broker: str, n: int) -> None:
    app, task = noop_app(broker)
    try:
        task.delay(-1)
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        one_by_one(app, task, n)
        profiler.disable()
        print(f"\nWhere delay()'s CPU goes ({n} calls, cProfile, process time):\n")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(20)
    finally:
        app.transport.purge("default")
        app.close()


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    print(
        f"{TASKS:,} no-op tasks per way, median of {REPS}; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="petiole-bench-producer-") as tmp:
        with redis_server(Path(tmp) / "redis") as server:
            print_table("Redis, appendfsync always (durable on reply)", measure(server.url, TASKS))
            with server.client() as admin:
                admin.config_set("appendonly", "no")
            print_table(
                "Redis, appendonly no (the peer benchmark's server)", measure(server.url, TASKS)
            )
            if "--profile" in sys.argv:
                profile_delay(server.url, TASKS)
        sqlite = f"sqlite:///{Path(tmp) / 'petiole.db'}"
        print_table("SQLite default (sqlite:///file)", measure(sqlite, TASKS))


if __name__ == "__main__":
    main()
