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

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from common import ENQUEUE_CONCURRENCY, RESULT_TIMEOUT_S, Setup, amqp_url
from systemkit import QueueProducer, env_int, produce_queue_workloads, redis_url
from taskiq_aio_pika import AioPikaBroker
from taskiq_redis import RedisAsyncResultBackend

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


# -- producer: synchronous calls over one event loop, the broker started on first use --

T = TypeVar("T")
_loops: list[asyncio.AbstractEventLoop] = []  # the producer's one loop, once started


def _run(work: Coroutine[Any, Any, T]) -> T:
    if not _loops:
        _loops.append(asyncio.new_event_loop())
        _loops[0].run_until_complete(broker.startup())
    return _loops[0].run_until_complete(work)


async def _result(task: Any) -> Any:
    result = await task.wait_result(check_interval=POLL_S, timeout=RESULT_TIMEOUT_S)
    if result.is_err:
        raise RuntimeError(f"echo failed: {result.error!r}")
    return result.return_value


async def _enqueue_noops(n: int) -> None:
    # Each send waits for its confirm; many in flight share the round trips.
    slots = asyncio.Semaphore(ENQUEUE_CONCURRENCY)

    async def one() -> None:
        async with slots:
            await noop.kiq()

    await asyncio.gather(*(one() for _ in range(n)))


async def _round_trip(i: int) -> Any:
    return await _result(await echo.kiq(i))


async def _send_and_wait(n: int) -> list[Any]:
    tasks = [await echo.kiq(i) for i in range(n)]
    return [await _result(task) for task in tasks]


PRODUCER = QueueProducer(
    enqueue_noops=lambda n: _run(_enqueue_noops(n)),
    round_trip=lambda i: _run(_round_trip(i)),
    send_and_wait=lambda n: _run(_send_and_wait(n)),
)

if __name__ == "__main__":
    produce_queue_workloads(PRODUCER, sys.argv[1:])
