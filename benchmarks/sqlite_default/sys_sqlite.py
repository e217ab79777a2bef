"""Petiole on the embedded SQLite default: the app the workers load and the producer.

The runner sets ``BENCH_SQLITE_URL`` (the database file, with ``?notify=...`` to
choose push wake-ups or the polling of earlier releases). ``python sys_sqlite.py
ACTION N`` runs one producer action and prints one JSON line (``systemkit``):
``enqueue`` (one ``delay()`` at a time), ``enqueue_batch`` (all in one
``transport.batch()`` block: one transaction), ``warmup``, ``w3``.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from typing import Any

from systemkit import (
    Figures,
    define_tasks,
    delay_producer,
    round_trip_latencies,
    run_action,
    warm_up,
)

from petiole import Petiole
from petiole.result import GroupResult
from petiole.transport import publishing_in_batches

URL_ENV = "BENCH_SQLITE_URL"
RESULT_TIMEOUT_S = 60.0

app = Petiole(
    "bench", broker=os.environ[URL_ENV], backend=os.environ[URL_ENV], config_file=os.devnull
)
noop, echo = define_tasks(app)


def _send_and_wait(n: int) -> list[Any]:
    results = [echo.delay(i) for i in range(n)]
    return GroupResult(str(uuid.uuid4()), results, app).get(timeout=RESULT_TIMEOUT_S)


PRODUCER = delay_producer(noop, echo, _send_and_wait, result_timeout_s=RESULT_TIMEOUT_S)


def _enqueue(n: int) -> Figures:
    """``n`` one by one, the first untimed (it opens the file)."""
    noop.delay()
    started = time.perf_counter()
    for _ in range(n - 1):
        noop.delay()
    return {"per_s": (n - 1) / (time.perf_counter() - started)}


def _enqueue_batch(n: int) -> Figures:
    """``n`` in one batch block (committed once, at its end), after one untimed send."""
    noop.delay()
    started = time.perf_counter()
    with publishing_in_batches(app.transport):
        for _ in range(n - 1):
            noop.delay()
    return {"per_s": (n - 1) / (time.perf_counter() - started)}


def _warmup(n: int) -> Figures:
    warm_up(PRODUCER, n)
    return {}


if __name__ == "__main__":
    run_action(
        {
            "enqueue": _enqueue,
            "enqueue_batch": _enqueue_batch,
            "warmup": _warmup,
            "w3": lambda n: round_trip_latencies(PRODUCER, n),
        },
        sys.argv[1:],
    )
