"""taskiq (latest from PyPI) with taskiq-aio-pika's ``AioPikaBroker`` and taskiq-redis's
``RedisAsyncResultBackend``.

Workers: ``taskiq worker --workers 2`` (two processes, its default), each an asyncio
loop running up to 100 tasks at once (its default), with ``qos`` (the prefetch)
raised from its default 10 to 64, as the other systems' prefetch. taskiq's defaults
otherwise: a quorum queue (taskiq-aio-pika's ``Queue`` declares ``x-queue-type``
quorum), publisher confirms (aio-pika's channels have ``publisher_confirms=True``),
acknowledgement once the result is saved (``--ack-type when_saved``), and a result
stored for every task, ``noop`` included (taskiq has no per-task switch for that).
The tasks are ``async def``, taskiq's own kind.

``wait_result`` polls the result backend every ``check_interval`` (0.2 s by default,
which would make W3 measure the poll); the producer polls every
``BENCH_TASKIQ_POLL_MS`` (1 ms) instead.
"""

from __future__ import annotations

import sys

from common import ENQUEUE_CONCURRENCY, RESULT_TIMEOUT_S, Setup, amqp_url
from systemkit import env_int, produce_queue_workloads, redis_url
from taskiq_aio_pika import AioPikaBroker
from taskiq_redis import RedisAsyncResultBackend
from taskiqkit import taskiq_producer

NAME = "taskiq"
SETUP = Setup(
    queue_type="quorum", confirms="yes (aio-pika's publisher_confirms=True)", results="Redis"
)
QUEUE = "taskiq"
QUEUES = (QUEUE, f"{QUEUE}.dead_letter")
PROCESSES = 2
QOS = env_int("BENCH_TASKIQ_QOS", 64)
POLL_S = env_int("BENCH_TASKIQ_POLL_MS", 1) / 1000
RESULT_TTL_S = 86400

broker = AioPikaBroker(amqp_url(), qos=QOS).with_result_backend(
    RedisAsyncResultBackend(redis_url(), result_ex_time=RESULT_TTL_S)
)


@broker.task(task_name="noop")
async def noop() -> None:
    pass


@broker.task(task_name="echo")
async def echo(x: int) -> int:
    return x


def config() -> str:
    return f"`taskiq worker --workers {PROCESSES}` with AioPikaBroker(qos={QOS})"


def worker_commands() -> list[list[str]]:
    return [
        [
            *(sys.executable, "-m", "taskiq", "worker", "sys_taskiq:broker"),
            *("--workers", str(PROCESSES), "--log-level", "WARNING"),
        ]
    ]


# -- producer ------------------------------------------------------------------------

PRODUCER = taskiq_producer(
    broker,
    noop,
    echo,
    poll_s=POLL_S,
    result_timeout_s=RESULT_TIMEOUT_S,
    enqueue_concurrency=ENQUEUE_CONCURRENCY,
)

if __name__ == "__main__":
    produce_queue_workloads(PRODUCER, sys.argv[1:])
