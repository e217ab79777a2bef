"""What the system modules and the runner share: where the servers are, and the producer.

Each system module (``sys_petiole``, ``sys_celery``) defines its app with the
Redis broker and its Cassandra result backend, two tasks (``echo(x) -> x`` and
``tsum(values) -> sum(values)``) and the same small interface, used by the
runner (``run.py``) and by the producer subprocess (``python sys_<name>.py
ACTION N``, which prints one JSON object).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

REDIS_ENV = "BENCH_REDIS_URL"
CASSANDRA_ENV = "BENCH_CASSANDRA"  # "host:port" of the one node
# How long the producer waits for any one result or chord (a broken worker must not hang the run).
RESULT_TIMEOUT_S = 120.0
PETIOLE_KEYSPACE = "petiole_bench"
CELERY_KEYSPACE = "celery_bench"
CELERY_TABLE = "celery_results"
RESULT_TTL_S = 86400  # both systems: results kept one day (each one's default or usual setting)


def redis_url() -> str:
    return os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/0")


def cassandra_host_port() -> tuple[str, int]:
    host, _, port = os.environ.get(CASSANDRA_ENV, "127.0.0.1:9042").rpartition(":")
    return host, int(port)


class Producer:
    """One system's producer side: what the runner asks a producer subprocess to do."""

    def __init__(
        self,
        *,
        round_trip: Callable[[int], Any],
        send_and_wait: Callable[[int], list[Any]],
        chord: Callable[[int], Any],
    ) -> None:
        self.round_trip = round_trip  # send echo(i), wait for its result, return it
        self.send_and_wait = send_and_wait  # send echo(0..n-1) one by one, wait for all
        self.chord = chord  # chord(echo(0..n-1))(tsum): send it, return the callback's result


def produce(producer: Producer, argv: Sequence[str]) -> None:
    """``ACTION N``: do it, print the figures as JSON on stdout."""
    action, n = argv[0], int(argv[1])
    out: dict[str, Any] = {}
    if action == "warmup":
        for i in range(n):
            _check(producer.round_trip(i), i)
        _check(producer.send_and_wait(n), list(range(n)))
        _check(producer.chord(n), sum(range(n)))
    elif action == "w2":
        _check(producer.round_trip(-1), -1)  # connected and warm before the clock starts
        started, cpu = time.perf_counter(), time.process_time()
        values = producer.send_and_wait(n)
        out["seconds"] = time.perf_counter() - started
        out["cpu_s"] = time.process_time() - cpu
        _check(values, list(range(n)))
    elif action == "chord":
        _check(producer.round_trip(-1), -1)
        started = time.perf_counter()
        total = producer.chord(n)
        out["seconds"] = time.perf_counter() - started
        _check(total, sum(range(n)))
    else:
        raise SystemExit(f"unknown action {action!r}")
    print(json.dumps(out), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip slow interpreter teardown (driver threads, connection pools)


def _check(got: Any, expected: Any) -> None:
    if got != expected:
        raise SystemExit(f"wrong result: expected {expected!r}, got {got!r}"[:300])
