"""Celery (latest from PyPI, ``celery[redis]``): Redis broker and Redis result backend.

Default: ``celery -A sys_celery worker`` with no option: the prefork pool with one
child per CPU, prefetch multiplier 4, gossip, mingle and heartbeats on. Best: see
``FLAGS``. Both keep Celery's default acknowledgement *before* the task runs
(``task_acks_late=False``, its fast path) and JSON.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

import redis
from celery import Celery, group  # type: ignore[import-untyped]
from celery.result import ResultSet  # type: ignore[import-untyped]
from common import RESULT_TIMEOUT_S, Flags, define_tasks, delay_producer, produce
from systemkit import celery_worker, env_int, redis_url

NAME = "Celery"
QUEUE = "celery"
APP = "sys_celery"
SCALE = 0.5
BEST_PROCESSES = env_int("BENCH_CELERY_PROCESSES", 2)
BEST_OPTIONS = shlex.split(
    os.environ.get(
        "BENCH_CELERY_OPTIONS",
        "-P solo --prefetch-multiplier 64 --without-gossip --without-mingle --without-heartbeat",
    )
)

FLAGS = {
    # Its several hundred tasks a second get half the sizes (rates are per second).
    "default": Flags(
        commands=[celery_worker(APP, [])], shown=f"celery -A {APP} worker", scale=SCALE
    ),
    "best": Flags(
        commands=[celery_worker(APP, BEST_OPTIONS)] * BEST_PROCESSES,
        shown=f"{BEST_PROCESSES} x celery -A {APP} worker {' '.join(BEST_OPTIONS)}",
        why="Celery's optimizing guide: a high prefetch for many short tasks; the solo pool "
        "in two worker processes skips prefork's hand-off to a child; with no other worker "
        "to talk to, gossip, mingle and heartbeats only cost (-P prefork -c 2 and -P threads "
        "-c 8 with the same prefetch drained slower at more CPU per task)",
        scale=SCALE,
    ),
}

app = Celery("bench", broker=redis_url(), backend=redis_url())
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=86400,
)
noop, echo = define_tasks(app)


def remaining(client: redis.Redis) -> int:
    """Messages not yet acknowledged: queued, plus delivered to the worker and not yet
    acknowledged (kombu's ``unacked`` hash)."""
    pipe = client.pipeline(transaction=False)
    pipe.llen(QUEUE)
    pipe.hlen("unacked")
    return int(sum(pipe.execute()))


def _send_and_wait(n: int) -> list[Any]:
    results = ResultSet([echo.delay(i) for i in range(n)])
    return list(results.get(timeout=RESULT_TIMEOUT_S))


def _send_batch_and_wait(n: int) -> list[Any]:
    """A ``group``: Celery's call for many tasks at once."""
    return list(group(echo.s(i) for i in range(n)).apply_async().get(timeout=RESULT_TIMEOUT_S))


PRODUCER = delay_producer(noop, echo, _send_and_wait, _send_batch_and_wait)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
