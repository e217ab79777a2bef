"""Celery (latest from PyPI): ``amqp://`` broker (kombu over py-amqp) and the ``rpc://``
result backend (results sent back over RabbitMQ to the caller's reply queue).

Workers: one ``celery worker`` with the prefork pool and two children, with the
flags the Redis benchmark runs it with (see ``config()``). Celery's defaults
otherwise: acknowledgement *before* the task runs (``task_acks_late=False``),
classic queues (``task_default_queue_type``), no publisher confirms (kombu's
``confirm_publish`` transport option is off unless set), JSON.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery
from celery.result import ResultSet
from common import RESULT_TIMEOUT_S, Setup, amqp_url
from systemkit import (
    celery_options,
    celery_worker,
    define_tasks,
    delay_producer,
    env_int,
    produce_queue_workloads,
)

NAME = "Celery"
SETUP = Setup(
    queue_type="classic", confirms="no (kombu's confirm_publish is off)", results="rpc://"
)
QUEUE = "celery"
QUEUES = (QUEUE,)
PREFETCH_MULTIPLIER = env_int("BENCH_CELERY_PREFETCH", 64)
CONCURRENCY = 2
OPTIONS = celery_options("prefork", CONCURRENCY, PREFETCH_MULTIPLIER)

app = Celery("bench", broker=amqp_url(), backend="rpc://")
app.conf.update(
    worker_prefetch_multiplier=PREFETCH_MULTIPLIER,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
noop, echo = define_tasks(app)


def config() -> str:
    return f"1 x `celery worker {' '.join(OPTIONS)}`"


def worker_commands() -> list[list[str]]:
    return [celery_worker("sys_celery", OPTIONS)]


def _send_and_wait(n: int) -> list[Any]:
    results = ResultSet([echo.delay(i) for i in range(n)])
    return list(results.get(timeout=RESULT_TIMEOUT_S))


PRODUCER = delay_producer(noop, echo, _send_and_wait, result_timeout_s=RESULT_TIMEOUT_S)

if __name__ == "__main__":
    produce_queue_workloads(PRODUCER, sys.argv[1:])
