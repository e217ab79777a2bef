"""What the system modules and the runner share: the producer's entry point and the
tasks that Celery and Petiole define alike.

Each system module (``sys_petiole``, ``sys_celery``, ``sys_dramatiq``) defines
its app and two tasks (``noop()`` and ``echo(x) -> x``) and the same small
interface, used by the runner (``run.py``) and by the producer subprocess
(``python sys_<name>.py ACTION N``, which prints one JSON object).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

from systemkit import EchoProducer, Figures, check, run_action, timed_batch, warm_up

# How long the producer waits for any one result (a broken worker must not hang the run).
RESULT_TIMEOUT_S = 60.0
# Untimed round trips before W3's timed ones (connections, script cache, listener threads).
W3_WARMUP = 20


@dataclass(frozen=True, kw_only=True)
class Producer(EchoProducer):
    """One system's producer side: what the runner asks a producer subprocess to do."""

    enqueue_noops: Callable[[int], None]


def produce(producer: Producer, argv: Sequence[str]) -> NoReturn:
    """``ACTION N``: do it, print the figures as JSON on stdout."""
    run_action(
        {
            "enqueue": partial(_timed_enqueue, producer),
            "warmup": partial(_warm_up, producer),
            "w2": partial(timed_batch, producer),
            "w3": partial(_round_trip_latencies, producer),
        },
        argv,
    )


def _timed_enqueue(producer: Producer, n: int) -> Figures:
    started = time.perf_counter()
    producer.enqueue_noops(n)
    return {"seconds": time.perf_counter() - started}


def _warm_up(producer: Producer, n: int) -> Figures:
    warm_up(producer, n)
    return {}


def _round_trip_latencies(producer: Producer, n: int) -> Figures:
    for i in range(W3_WARMUP):
        check(producer.round_trip(-i), -i)
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        value = producer.round_trip(i)
        latencies.append(time.perf_counter() - started)
        check(value, i)
    return {"latencies_s": latencies}


def define_tasks(app: Any) -> tuple[Any, Any]:
    """``noop`` and ``echo`` on a Celery or Petiole app (the same decorator and options),
    so both systems run exactly the same tasks."""

    @app.task(name="bench.noop", ignore_result=True)
    def noop() -> None:
        pass

    @app.task(name="bench.echo")
    def echo(x: int) -> int:
        return x

    return noop, echo


def delay_producer(noop: Any, echo: Any, send_and_wait: Callable[[int], list[Any]]) -> Producer:
    """The producer of a system with Celery's calling API (``task.delay(...)``,
    ``result.get(timeout=...)``): Celery and Petiole; only waiting for a batch differs."""
    return Producer(
        enqueue_noops=lambda n: [noop.delay() for _ in range(n)] and None,
        round_trip=lambda i: echo.delay(i).get(timeout=RESULT_TIMEOUT_S),
        send_and_wait=send_and_wait,
    )
