"""arq (latest from PyPI; async, Redis only): its own queue (a sorted set), job and
result keys.

Default: ``arq sys_arq.WorkerSettings``: one process, up to ``max_jobs`` (10) jobs at
once, and ``poll_delay`` (0.5 s) between two reads of the queue: arq never blocks on
Redis, it polls. Best: see ``FLAGS``. ``noop`` keeps no result (``keep_result=0``, as
the other systems' ``ignore_result``); ``echo`` keeps arq's default hour.

``Job.result`` polls too (every 0.5 s by default, which would make W3 measure the
poll); the producer polls every ``BENCH_ARQ_POLL_MS`` (1 ms) instead, with either
flags. arq 0.28 asks for redis-py below 6; it runs on redis-py 8 here (the ``bench``
session installs it without its dependencies, as the other peers need redis-py 8).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

import redis
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job
from arq.worker import Function, func
from common import RESULT_TIMEOUT_S, Flags, produce
from systemkit import QueueProducer, env_int, redis_url

NAME = "arq"
QUEUE = "arq:queue"
POLL_S = env_int("BENCH_ARQ_POLL_MS", 1) / 1000
BEST_PROCESSES = env_int("BENCH_ARQ_PROCESSES", 2)
BEST_POLL_DELAY_S = env_int("BENCH_ARQ_POLL_DELAY_MS", 5) / 1000
BEST_MAX_JOBS = env_int("BENCH_ARQ_MAX_JOBS", 100)
# Sends in flight at once while W1's tasks are enqueued (each send is a transaction).
ENQUEUE_CONCURRENCY = 32


async def noop(ctx: dict[str, Any]) -> None:
    pass


async def echo(ctx: dict[str, Any], x: int) -> int:
    return x


class WorkerSettings:
    """arq's defaults: only the functions and the server are set."""

    functions: ClassVar[list[Function]] = [func(noop, keep_result=0), func(echo)]
    redis_settings = RedisSettings.from_dsn(redis_url())


class BestWorkerSettings:
    """arq reads a settings class's own attributes only (no inheritance)."""

    functions = WorkerSettings.functions
    redis_settings = WorkerSettings.redis_settings
    poll_delay = BEST_POLL_DELAY_S
    max_jobs = BEST_MAX_JOBS


def _worker(settings: str) -> list[str]:
    return [sys.executable, "-m", "arq", f"sys_arq.{settings}"]


FLAGS = {
    "default": Flags(
        commands=[_worker("WorkerSettings")],
        shown="arq sys_arq.WorkerSettings",
        # Its 0.5 s poll holds it to tens of tasks a second (and W3 to a poll per trip).
        scale=0.02,
    ),
    "best": Flags(
        commands=[_worker("BestWorkerSettings")] * BEST_PROCESSES,
        shown=f"{BEST_PROCESSES} x arq sys_arq.BestWorkerSettings "
        f"(poll_delay={BEST_POLL_DELAY_S:g}, max_jobs={BEST_MAX_JOBS})",
        why="a process per core; a short poll_delay, since each poll is one read of "
        "the queue and the worker sleeps poll_delay after every read, busy or not; "
        "more jobs at once per read",
        # A few hundred tasks a second: a quarter of the sizes (rates are per second).
        scale=0.25,
    ),
}


def remaining(client: redis.Redis) -> int:
    """Jobs not yet finished: arq removes a job from its queue when it finishes."""
    return int(client.zcard(QUEUE))


# -- producer: synchronous calls over one event loop, the pool created on first use ----

T = TypeVar("T")
_pools: list[tuple[asyncio.AbstractEventLoop, ArqRedis]] = []


def _run(work: Callable[[ArqRedis], Coroutine[Any, Any, T]]) -> T:
    if not _pools:
        loop = asyncio.new_event_loop()
        _pools.append((loop, loop.run_until_complete(create_pool(WorkerSettings.redis_settings))))
    loop, pool = _pools[0]
    return loop.run_until_complete(work(pool))


async def _enqueue(pool: ArqRedis, function: str, *args: Any) -> Job:
    job = await pool.enqueue_job(function, *args)
    if job is None:
        raise RuntimeError(f"arq refused the job {function}{args}")
    return job


async def _enqueue_noops(pool: ArqRedis, n: int) -> None:
    slots = asyncio.Semaphore(ENQUEUE_CONCURRENCY)

    async def one() -> None:
        async with slots:
            await _enqueue(pool, "noop")

    await asyncio.gather(*(one() for _ in range(n)))


async def _round_trip(pool: ArqRedis, i: int) -> Any:
    job = await _enqueue(pool, "echo", i)
    return await job.result(timeout=RESULT_TIMEOUT_S, poll_delay=POLL_S)


async def _send_and_wait(pool: ArqRedis, n: int) -> list[Any]:
    jobs = [await _enqueue(pool, "echo", i) for i in range(n)]
    return [await job.result(timeout=RESULT_TIMEOUT_S, poll_delay=POLL_S) for job in jobs]


PRODUCER = QueueProducer(
    enqueue_noops=lambda n: _run(lambda pool: _enqueue_noops(pool, n)),
    round_trip=lambda i: _run(lambda pool: _round_trip(pool, i)),
    send_and_wait=lambda n: _run(lambda pool: _send_and_wait(pool, n)),
)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
