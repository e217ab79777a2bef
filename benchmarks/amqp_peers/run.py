"""Petiole vs Celery vs Dramatiq vs taskiq on one local RabbitMQ node: three workloads.

    nox -s bench -- amqp          (or: python benchmarks/amqp_peers/run.py)

Starts one RabbitMQ node (``petiole_amqp.testing.RabbitServer``: 127.0.0.1, free
ports, a temporary directory) as every system's broker, and one ``redis-server``
(``--save '' --appendonly no``) for the results of the systems that store them there
(Celery's go back over RabbitMQ: ``rpc://``). Then, for each repetition and each
system in turn (interleaved):

* every queue any system declares is deleted (as the Redis runner flushes);
* **W1** enqueue ``W1_TASKS`` no-op tasks with no worker running, start the
  system's workers, and time the drain: the runner polls the queue's ready-message
  count (a passive ``queue.declare``) every 5 ms, from the first delivery it sees to
  the queue being empty, and counts only the messages still queued at the first, so
  worker start-up is not counted;
* a warm-up (round trips and a small batch, not timed);
* **W2** send ``W2_TASKS`` ``echo(i)`` tasks one by one and wait for every result,
  timed from the first send to the last result;
* **W3** ``W3_ROUND_TRIPS`` sequential round trips (send, wait for the result),
  each timed.

Producers run in their own subprocesses, workers in theirs. Figures are the median
over the repetitions; CPU per task is read from ``/proc`` (workers with their
children, the RabbitMQ node, redis-server, and for W2 the producer). Environment:
``BENCH_REPS`` (default 2), ``BENCH_SYSTEMS`` (default
``petiole,petiole_rpc,petiole_classic,celery,dramatiq,dramatiq_confirms,taskiq``),
``BENCH_W1_TASKS``, ``BENCH_W2_TASKS``, ``BENCH_W3_ROUND_TRIPS``, ``BENCH_JSON``
(write the raw figures there), and each system's worker knobs (see the ``sys_*``
modules).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType

import pika
import pika.exceptions
import redis
from petiole_amqp.testing import RabbitServer

HERE = Path(__file__).resolve().parent
# The system modules and ``common`` live here, ``benchkit`` and ``systemkit`` one up.
sys.path[:0] = [str(HERE), str(HERE.parent)]

import benchkit  # noqa: E402
from benchkit import Figure, Runs  # noqa: E402
from common import AMQP_URL_ENV  # noqa: E402
from systemkit import REDIS_URL_ENV, Figures, env_int  # noqa: E402

W1_TASKS = env_int("BENCH_W1_TASKS", 20000)
W2_TASKS = env_int("BENCH_W2_TASKS", 5000)
W3_ROUND_TRIPS = env_int("BENCH_W3_ROUND_TRIPS", 500)
REPS = env_int("BENCH_REPS", 2)
SYSTEMS = os.environ.get(
    "BENCH_SYSTEMS",
    "petiole,petiole_rpc,petiole_classic,celery,dramatiq,dramatiq_confirms,taskiq",
).split(",")
DISTS = (
    *("petiole", "petiole-amqp", "petiole-redis", "pika", "celery", "kombu", "amqp"),
    *("dramatiq", "taskiq", "taskiq-aio-pika", "aio-pika", "taskiq-redis", "redis"),
)
# The ratio columns: Petiole's default (quorum queues) and the like-for-like classic row.
BASES = ("Petiole", "Petiole classic")
WARMUP = 100
# A passive queue.declare is a round trip through the node: every 5 ms is fine enough
# for drains of several seconds and keeps the node's share of the poll small.
POLL_S = 0.005
# Bounds, so a broken system fails the run instead of hanging it.
QUEUED_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 180.0
PRODUCER_TIMEOUT_S = 240.0


# -- the node -----------------------------------------------------------------------------


@contextlib.contextmanager
def rabbit_node() -> Iterator[RabbitServer]:
    """One RabbitMQ node in a temporary directory; it and its epmd are stopped after.

    ``BENCH_RABBIT_DIR`` puts that directory elsewhere: ``/dev/shm`` (memory) takes
    the disk's sync out of every confirm, to tell the disk's share of a latency
    from the software's (figures in benchmarks/README.md)."""
    parent = os.environ.get("BENCH_RABBIT_DIR") or None
    with tempfile.TemporaryDirectory(prefix="petiole-bench-rabbit-", dir=parent) as directory:
        server = RabbitServer(Path(directory))
        try:
            yield server.start()
        finally:
            server.close()


def node_group(server: RabbitServer) -> int:
    """The process group of the node: its start script leads it, the Erlang VM is in it."""
    return server.pid


class Queues:
    """The runner's own AMQP connection: queue counts and deletions."""

    def __init__(self, server: RabbitServer) -> None:
        self._connection = server.connection()
        self._channel = self._connection.channel()

    def ready(self, queue: str) -> int:
        """Messages waiting in ``queue``, not yet delivered (RabbitMQ's own count)."""
        try:
            declared = self._channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:  # 404: not declared yet
            self._channel = self._connection.channel()
            raise RuntimeError(f"queue {queue!r} does not exist") from error
        return int(declared.method.message_count)

    def delete(self, queues: Iterable[str]) -> None:
        """Delete each queue (RabbitMQ answers ``delete-ok`` for a missing one too)."""
        for queue in queues:
            self._channel.queue_delete(queue)

    def close(self) -> None:
        with contextlib.suppress(pika.exceptions.AMQPError, OSError):
            self._connection.close()


# -- processes ----------------------------------------------------------------------------


def _env(urls: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    # PETIOLE_* settings of the caller's shell would override the benchmark's app settings.
    return benchkit.child_env(HERE, {**(extra or {}), **urls}, drop_prefix="PETIOLE_")


def produce(system: ModuleType, urls: dict[str, str], action: str, n: int) -> Figures:
    return benchkit.run_producer(
        system, action, n, folder=HERE, env=_env(urls), timeout_s=PRODUCER_TIMEOUT_S
    )


# -- one repetition of one system ------------------------------------------------------------


def wait_queued(system: ModuleType, queues: Queues, total: int) -> None:
    """Until the node counts every enqueued message (a send without confirms may still
    be on its way when the producer exits)."""
    deadline = time.monotonic() + QUEUED_TIMEOUT_S
    while (queued := queues.ready(system.QUEUE)) != total:
        if queued > total or time.monotonic() > deadline:
            raise RuntimeError(f"{system.NAME}: {queued} messages queued, expected {total}")
        time.sleep(0.05)


def drain(
    system: ModuleType, queues: Queues, total: int, cpu: Callable[[], dict[str, float]]
) -> tuple[float, dict[str, float]]:
    """Tasks per second from the first delivery seen to the queue being empty, and CPU
    seconds per task by process over the same window.

    AMQP counts ready messages only: each end of the window is off by at most the
    workers' prefetch (delivered, not yet acknowledged), the same at both ends."""
    window = benchkit.drain_window(
        lambda: queues.ready(system.QUEUE),
        total,
        cpu,
        what=system.NAME,
        timeout_s=DRAIN_TIMEOUT_S,
        poll_s=POLL_S,
    )
    spent = {
        part: (seconds - window.before[part]) / window.count
        for part, seconds in window.after.items()
    }
    return window.per_s, spent


def run_system(
    system: ModuleType,
    urls: dict[str, str],
    queues: Queues,
    servers: dict[str, tuple[set[int], set[int]]],
    every_queue: set[str],
    log: Path,
) -> Figures:
    queues.delete(every_queue)
    client = redis.Redis.from_url(urls[REDIS_URL_ENV])
    client.flushall()
    client.close()
    figures: Figures = {}
    enqueued = produce(system, urls, "enqueue", W1_TASKS)
    figures["enqueue_per_s"] = enqueued["per_s"]
    wait_queued(system, queues, W1_TASKS)
    env = _env(urls, getattr(system, "WORKER_ENV", None))
    workers = benchkit.start_workers(system.worker_commands(), folder=HERE, env=env, log=log)
    try:
        # (process groups, pids): the workers with their children, then each server.
        parts = {"workers": ({w.pid for w in workers}, set[int]()), **servers}

        def cpu() -> dict[str, float]:
            return {name: benchkit.cpu_seconds(*part) for name, part in parts.items()}

        figures["w1_per_s"], w1_cpu = drain(system, queues, W1_TASKS, cpu)
        for part, seconds in w1_cpu.items():
            figures[f"w1_cpu_{part}_us"] = seconds * 1e6
        figures["w1_cpu_us"] = sum(w1_cpu.values()) * 1e6
        produce(system, urls, "warmup", WARMUP)
        before = cpu()
        w2 = produce(system, urls, "w2", W2_TASKS)
        figures["w2_per_s"] = W2_TASKS / w2["seconds"]
        w2_cpu = {part: seconds - before[part] for part, seconds in cpu().items()}
        w2_cpu["producer"] = w2["cpu_s"]
        for part, seconds in w2_cpu.items():
            figures[f"w2_cpu_{part}_us"] = seconds / W2_TASKS * 1e6
        figures["w2_cpu_us"] = sum(w2_cpu.values()) / W2_TASKS * 1e6
        w3 = produce(system, urls, "w3", W3_ROUND_TRIPS)["latencies_s"]
        cuts = statistics.quantiles(w3, n=100, method="inclusive")
        figures["w3_p50_ms"] = statistics.median(w3) * 1000
        figures["w3_p99_ms"] = cuts[98] * 1000
    finally:
        benchkit.stop_workers(workers)
    return figures


# -- report -------------------------------------------------------------------------------


FIGURES = (
    Figure(f"W1: drain {W1_TASKS:,} no-op tasks, enqueued first", "w1_per_s", "tasks/s", 0, True),
    Figure(
        f"W2: {W2_TASKS:,} tasks, producer waits for every result", "w2_per_s", "tasks/s", 0, True
    ),
    Figure(f"W3: {W3_ROUND_TRIPS} sequential round trips, p50", "w3_p50_ms", "ms", 2, False),
    Figure(f"W3: {W3_ROUND_TRIPS} sequential round trips, p99", "w3_p99_ms", "ms", 2, False),
    Figure("W1 CPU per task: workers + RabbitMQ + redis-server", "w1_cpu_us", "µs", 0, False),
    Figure(
        "W2 CPU per task: workers + RabbitMQ + redis-server + producer", "w2_cpu_us", "µs", 0, False
    ),
    Figure("Enqueue rate before W1 (not a target)", "enqueue_per_s", "tasks/s", 0, True),
)
CPU_PARTS = ("workers", "rabbitmq", "redis")


def setup_table(systems: Iterable[ModuleType]) -> list[str]:
    lines = ["", "How each system runs", ""]
    lines.append("| system | queue type | publisher confirms | results | workers |")
    lines.append("|---|---|---|---|---|")
    for system in systems:
        s = system.SETUP
        lines.append(
            f"| {system.NAME} | {s.queue_type} | {s.confirms} | {s.results} | {system.config()} |"
        )
    return lines


def report(systems: Iterable[ModuleType], runs: Runs) -> str:
    # Petiole / system even for times (below 1: Petiole is faster), as in redis_peers.
    lines = setup_table(systems)
    lines += benchkit.comparison_tables(
        runs, FIGURES, ratio=benchkit.petiole_over_system, bases=BASES
    )
    lines += cpu_by_process_table(runs, "w1", CPU_PARTS)
    lines += cpu_by_process_table(runs, "w2", (*CPU_PARTS, "producer"))
    return "\n".join(lines)


def cpu_by_process_table(runs: Runs, workload: str, parts: tuple[str, ...]) -> list[str]:
    lines = ["", f"{workload.upper()} CPU per task by process (µs, medians)", ""]
    lines.append("| system | " + " | ".join(parts) + " |")
    lines.append("|---|" + "---:|" * len(parts))
    for name, system_runs in runs.items():
        cells = " | ".join(
            f"{benchkit.median(system_runs, f'{workload}_cpu_{part}_us'):,.0f}" for part in parts
        )
        lines.append(f"| {name} | {cells} |")
    return lines


def main() -> None:
    systems = benchkit.import_systems(SYSTEMS)
    every_queue = {queue for system in systems.values() for queue in system.QUEUES}
    started = time.monotonic()
    benchkit.print_setup(benchkit.versions(DISTS), systems)
    with benchkit.redis_server() as (redis_url, redis_pid), rabbit_node() as server:
        print(
            f"RabbitMQ {server.ctl('version').strip()} at {server.url} "
            f"(ready in {server.last_start_s:.1f} s); redis-server at {redis_url}",
            flush=True,
        )
        urls = {AMQP_URL_ENV: server.url, REDIS_URL_ENV: redis_url}
        servers = {
            "rabbitmq": ({node_group(server)}, set[int]()),
            "redis": (set[int](), {redis_pid}),
        }
        queues = Queues(server)
        try:
            runs = benchkit.run_rounds(
                systems,
                lambda system, log: run_system(system, urls, queues, servers, every_queue, log),
                reps=REPS,
                warmup_rounds=0,
            )
        finally:
            queues.close()
    print(report(systems.values(), runs))
    benchkit.finish(started, runs)


if __name__ == "__main__":
    main()
