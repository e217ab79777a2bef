"""What the system modules of the peer benchmarks (``redis_peers/sys_*.py``,
``cassandra_peers/sys_*.py``, ``amqp_peers/sys_*.py``) share, in their workers and
producer subprocesses.

Settings from the environment, the worker command lines of the systems with
Celery's command line (Celery and Petiole), and the producer side (``python
sys_<name>.py ACTION N``): the echo workloads every system runs the same way, the
W1-W3 workloads of the queue benchmarks (``redis_peers``, ``amqp_peers``), and the
one JSON line that answers. Imported by workers too, so it imports little.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, NoReturn, Protocol

REDIS_URL_ENV = "BENCH_REDIS_URL"
# Untimed round trips before W3's timed ones (connections, script cache, listener threads).
W3_WARMUP = 20

Figures = dict[str, Any]


def env_int(name: str, default: int) -> int:
    """A size or count the user may override from the environment."""
    return int(os.environ.get(name, str(default)))


def redis_url() -> str:
    """The broker every system module connects to (set by the runner)."""
    return os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0")


# -- worker command lines ---------------------------------------------------------------


def pool_options(pool: str, concurrency: int, prefetch_multiplier: int) -> list[str]:
    """The options Petiole's and Celery's ``worker`` commands both take; also what the
    setup line shows, so shown and run cannot drift apart."""
    return ["-P", pool, "-c", str(concurrency), "--prefetch-multiplier", str(prefetch_multiplier)]


def celery_options(pool: str, concurrency: int, prefetch_multiplier: int) -> list[str]:
    """``pool_options``, and no worker-to-worker events: with one worker there is
    nothing to synchronise, so they would only cost."""
    return [
        *pool_options(pool, concurrency, prefetch_multiplier),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]


def petiole_worker(app: str, options: Sequence[str]) -> list[str]:
    """``petiole worker`` for ``app`` (``module:attribute``), logging as it does by
    default (INFO without a line per task; Celery's default, WARNING, is passed to
    Celery's worker below, which logs a line per task at INFO)."""
    return [sys.executable, "-m", "petiole", "worker", "-A", app, *options]


def celery_worker(app: str, options: Sequence[str]) -> list[str]:
    """``celery worker`` for ``app`` (a module)."""
    return [sys.executable, "-m", "celery", "-A", app, "worker", *options, "-l", "WARNING"]


# -- producer side ------------------------------------------------------------------------

# One action of a producer subprocess: ``N`` in, the figures to report out.
Action = Callable[[int], Figures]


def run_action(actions: Mapping[str, Action], argv: Sequence[str]) -> NoReturn:
    """``ACTION N``: run it, print its figures as the one JSON line the runner reads,
    and exit at once."""
    name, n = argv[0], int(argv[1])
    if name not in actions:
        raise SystemExit(f"unknown action {name!r}")
    print(json.dumps(actions[name](n)), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip slow interpreter teardown (connection pools, driver threads)


@dataclass(frozen=True, kw_only=True)
class EchoProducer:
    """How a system sends ``echo`` tasks and waits for their results."""

    round_trip: Callable[[int], Any]  # send echo(i), wait for its result, return it
    send_and_wait: Callable[[int], list[Any]]  # send echo(0..n-1), wait for all, return them


class Meter(Protocol):
    """Counts what the timed part of a workload costs beyond time (e.g. broker commands):
    ``start()`` just before it, ``stop()`` just after, whose figures join the workload's."""

    def start(self) -> None: ...

    def stop(self) -> Figures: ...


class _NoMeter:
    def start(self) -> None:
        pass

    def stop(self) -> Figures:
        return {}


def warm_up(producer: EchoProducer, n: int) -> None:
    """``n`` round trips, then a batch of ``n``: connections and caches ready."""
    for i in range(n):
        check(producer.round_trip(i), i)
    check(producer.send_and_wait(n), list(range(n)))


def timed_batch(producer: EchoProducer, n: int, meter: Meter | None = None) -> Figures:
    """W2: send ``n`` echo tasks and wait for every result; wall and producer CPU time,
    and what ``meter`` counted over the same span."""
    meter = meter or _NoMeter()
    check(producer.round_trip(-1), -1)  # connected and warm before the clock starts
    meter.start()
    started, cpu = time.perf_counter(), time.process_time()
    values = producer.send_and_wait(n)
    figures = {"seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}
    figures.update(meter.stop())
    check(values, list(range(n)))
    return figures


# -- the queue benchmarks' workloads (W1 enqueue, warm-up, W2 and W2 batch, W3) --------------


@dataclass(frozen=True, kw_only=True)
class QueueProducer(EchoProducer):
    """One system's producer side in the queue benchmarks (``redis_peers``,
    ``amqp_peers``): what the runner asks a producer subprocess to do."""

    enqueue_noops: Callable[[int], None]  # send noop() n times, with no worker running
    # W2 as a user with a batch in hand writes it: the system's own call that sends
    # many tasks at once (a group, ``delay_many``, ``enqueue_many``), then every result.
    # None for a system without one: its user sends one by one, as ``send_and_wait``.
    send_batch_and_wait: Callable[[int], list[Any]] | None = None


def produce_queue_workloads(
    producer: QueueProducer, argv: Sequence[str], meter: Meter | None = None
) -> NoReturn:
    """``ACTION N`` (``enqueue``, ``warmup``, ``w2``, ``w2batch``, ``w3``): do it, print
    the figures as JSON on stdout; ``meter``'s figures for the timed part of W2 and W3
    too."""
    batched = producer
    if producer.send_batch_and_wait is not None:
        batched = replace(producer, send_and_wait=producer.send_batch_and_wait)
    run_action(
        {
            "enqueue": partial(_timed_enqueue, producer),
            "warmup": partial(_warm_up, producer),
            "w2": partial(timed_batch, producer, meter=meter),
            "w2batch": partial(timed_batch, batched, meter=meter),
            "w3": partial(round_trip_latencies, producer, meter=meter),
        },
        argv,
    )


def _timed_enqueue(producer: QueueProducer, n: int) -> Figures:
    """``n`` tasks, the first untimed: it connects, and declares (creates) the queue,
    which a broker may take a second over (RabbitMQ's new-queue settle, see
    petiole-amqp's README); ``per_s`` is the rate after it."""
    producer.enqueue_noops(1)
    started = time.perf_counter()
    producer.enqueue_noops(n - 1)
    return {"per_s": (n - 1) / (time.perf_counter() - started)}


def _warm_up(producer: EchoProducer, n: int) -> Figures:
    warm_up(producer, n)
    return {}


def round_trip_latencies(producer: EchoProducer, n: int, meter: Meter | None = None) -> Figures:
    """W3: ``W3_WARMUP`` untimed round trips, then ``n`` timed ones, one after another
    (``meter`` counting over the timed ones)."""
    meter = meter or _NoMeter()
    for i in range(W3_WARMUP):
        check(producer.round_trip(-i), -i)
    latencies = []
    meter.start()
    for i in range(n):
        started = time.perf_counter()
        value = producer.round_trip(i)
        latencies.append(time.perf_counter() - started)
        check(value, i)
    return {"latencies_s": latencies, **meter.stop()}


def define_tasks(app: Any) -> tuple[Any, Any]:
    """``noop`` and ``echo`` on a Celery or Petiole app (the same decorator and options),
    so both systems run exactly the same tasks."""

    task: Callable[..., Callable[[Callable[..., Any]], Any]] = app.task

    @task(name="bench.noop", ignore_result=True)
    def noop() -> None:
        pass

    @task(name="bench.echo")
    def echo(x: int) -> int:
        return x

    return noop, echo


def delay_producer(
    noop: Any,
    echo: Any,
    send_and_wait: Callable[[int], list[Any]],
    *,
    result_timeout_s: float,
    enqueue_noops: Callable[[int], None] | None = None,
    send_batch_and_wait: Callable[[int], list[Any]] | None = None,
) -> QueueProducer:
    """The producer of a system with Celery's calling API (``task.delay(...)``,
    ``result.get(timeout=...)``): Celery and Petiole; only waiting for a batch (and
    sending one with the system's batch call) differs, and, where a system's send
    waits for the broker, how W1's tasks are enqueued."""

    def delay_noops(n: int) -> None:
        for _ in range(n):
            noop.delay()

    return QueueProducer(
        enqueue_noops=enqueue_noops or delay_noops,
        round_trip=lambda i: echo.delay(i).get(timeout=result_timeout_s),
        send_and_wait=send_and_wait,
        send_batch_and_wait=send_batch_and_wait,
    )


def check(got: Any, expected: Any) -> None:
    if got != expected:
        raise SystemExit(f"wrong result: expected {expected!r}, got {got!r}"[:300])
