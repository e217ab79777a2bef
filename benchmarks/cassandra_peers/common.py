"""What the system modules and the runner share: where the servers are, the producer,
and the tasks that Celery and Petiole define alike.

Each system module (``sys_petiole``, ``sys_celery``) defines its app with the
Redis broker and its Cassandra result backend, two tasks (``echo(x) -> x`` and
``tsum(values) -> sum(values)``) and the same small interface, used by the
runner (``run.py``) and by the producer subprocess (``python sys_<name>.py
ACTION N``, which prints one JSON object).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

from systemkit import EchoProducer, Figures, check, run_action, timed_batch, warm_up

CASSANDRA_ENV = "BENCH_CASSANDRA"  # "host:port" of the one node
# How long the producer waits for any one result or chord (a broken worker must not hang the run).
RESULT_TIMEOUT_S = 120.0
PETIOLE_KEYSPACE = "petiole_bench"
CELERY_KEYSPACE = "celery_bench"
CELERY_TABLE = "celery_results"
RESULT_TTL_S = 86400  # both systems: results kept one day (each one's default or usual setting)


def cassandra_host_port() -> tuple[str, int]:
    host, _, port = os.environ.get(CASSANDRA_ENV, "127.0.0.1:9042").rpartition(":")
    return host, int(port)


@dataclass(frozen=True, kw_only=True)
class Producer(EchoProducer):
    """One system's producer side: what the runner asks a producer subprocess to do.
    ``send_and_wait`` sends its tasks one by one."""

    chord: Callable[[int], Any]  # chord(echo(0..n-1))(tsum): send it, return the callback's result


def produce(producer: Producer, argv: Sequence[str]) -> NoReturn:
    """``ACTION N``: do it, print the figures as JSON on stdout."""
    run_action(
        {
            "warmup": partial(_warm_up, producer),
            "w2": partial(timed_batch, producer),
            "chord": partial(_timed_chord, producer),
        },
        argv,
    )


def _warm_up(producer: Producer, n: int) -> Figures:
    warm_up(producer, n)
    check(producer.chord(n), sum(range(n)))
    return {}


def _timed_chord(producer: Producer, n: int) -> Figures:
    check(producer.round_trip(-1), -1)  # connected and warm before the clock starts
    started = time.perf_counter()
    total = producer.chord(n)
    seconds = time.perf_counter() - started
    check(total, sum(range(n)))
    return {"seconds": seconds}


def define_tasks(app: Any) -> tuple[Any, Any]:
    """``echo`` and ``tsum`` on a Celery or Petiole app (the same decorator and options),
    so both systems run exactly the same tasks."""

    @app.task(name="bench.echo")
    def echo(x: int) -> int:
        return x

    @app.task(name="bench.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    return echo, tsum


def delay_producer(
    echo: Any,
    tsum: Any,
    *,
    chord: Callable[..., Any],
    send_and_wait: Callable[[int], list[Any]],
) -> Producer:
    """The producer of a system with Celery's calling API (``task.delay(...)``,
    ``task.s(...)``, ``chord(header)(callback)``, ``result.get(timeout=...)``): Celery
    and Petiole, each with its own ``chord``; only waiting for a batch differs."""

    def send_chord(n: int) -> Any:
        return chord(echo.s(i) for i in range(n))(tsum.s()).get(timeout=RESULT_TIMEOUT_S)

    return Producer(
        round_trip=lambda i: echo.delay(i).get(timeout=RESULT_TIMEOUT_S),
        send_and_wait=send_and_wait,
        chord=send_chord,
    )
