"""Celery (latest from PyPI, ``celery[redis]``): Redis broker and Redis result backend.

Workers: one ``celery worker`` with the prefork pool and two children (see
``config()``). Celery's defaults are kept where they are its fast path:
acknowledgement *before* the task runs (``task_acks_late=False``), JSON.
"""

from __future__ import annotations

import sys
from typing import Any

import redis
from celery import Celery
from celery.result import ResultSet
from common import RESULT_TIMEOUT_S, define_tasks, delay_producer, produce
from systemkit import celery_options, celery_worker, env_int, redis_url

NAME = "Celery"
QUEUE = "celery"
PREFETCH_MULTIPLIER = env_int("BENCH_CELERY_PREFETCH", 64)
CONCURRENCY = 2
OPTIONS = celery_options("prefork", CONCURRENCY, PREFETCH_MULTIPLIER)

app = Celery("bench", broker=redis_url(), backend=redis_url())
app.conf.update(
    worker_prefetch_multiplier=PREFETCH_MULTIPLIER,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=86400,
)
noop, echo = define_tasks(app)


def config() -> str:
    return f"1 x `celery worker {' '.join(OPTIONS)}`"


def worker_commands() -> list[list[str]]:
    return [celery_worker("sys_celery", OPTIONS)]


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


PRODUCER = delay_producer(noop, echo, _send_and_wait)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
