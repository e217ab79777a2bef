"""What the system modules and the runner share: the broker URL, and the producer's entry point.

Each system module (``sys_petiole``, ``sys_celery``, ``sys_dramatiq``) defines
its app and two tasks (``noop()`` and ``echo(x) -> x``) and the same small
interface, used by the runner (``run.py``) and by the producer subprocess
(``python sys_<name>.py ACTION N``, which prints one JSON object).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

URL_ENV = "BENCH_REDIS_URL"
# How long the producer waits for any one result (a broken worker must not hang the run).
RESULT_TIMEOUT_S = 60.0
# Untimed round trips before W3's timed ones (connections, script cache, listener threads).
W3_WARMUP = 20


def redis_url() -> str:
    return os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0")


class Producer:
    """One system's producer side: what the runner asks a producer subprocess to do."""

    def __init__(
        self,
        *,
        enqueue_noops: Callable[[int], None],
        round_trip: Callable[[int], Any],
        send_and_wait: Callable[[int], list[Any]],
    ) -> None:
        self.enqueue_noops = enqueue_noops
        self.round_trip = round_trip  # send echo(i), wait for its result, return it
        self.send_and_wait = send_and_wait  # send echo(0..n-1), wait for all, return them


def produce(producer: Producer, argv: Sequence[str]) -> None:
    """``ACTION N``: do it, print the figures as JSON on stdout."""
    action, n = argv[0], int(argv[1])
    out: dict[str, Any] = {}
    if action == "enqueue":
        started = time.perf_counter()
        producer.enqueue_noops(n)
        out["seconds"] = time.perf_counter() - started
    elif action == "warmup":
        for i in range(n):
            _check(producer.round_trip(i), i)
        _check(producer.send_and_wait(n), list(range(n)))
    elif action == "w2":
        _check(producer.round_trip(-1), -1)  # connected and warm before the clock starts
        started, cpu = time.perf_counter(), time.process_time()
        values = producer.send_and_wait(n)
        out["seconds"] = time.perf_counter() - started
        out["cpu_s"] = time.process_time() - cpu
        _check(values, list(range(n)))
    elif action == "w3":
        for i in range(W3_WARMUP):
            _check(producer.round_trip(-i), -i)
        latencies = []
        for i in range(n):
            started = time.perf_counter()
            value = producer.round_trip(i)
            latencies.append(time.perf_counter() - started)
            _check(value, i)
        out["latencies_s"] = latencies
    else:
        raise SystemExit(f"unknown action {action!r}")
    print(json.dumps(out), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip slow interpreter teardown (connection pools, threads)


def _check(got: Any, expected: Any) -> None:
    if got != expected:
        raise SystemExit(f"wrong result: expected {expected!r}, got {got!r}"[:300])
