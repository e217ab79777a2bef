"""taskiq's producer side for the queue benchmarks (``redis_peers``, ``amqp_peers``).

taskiq is asynchronous; the runner asks producers for synchronous calls. One
event loop per producer process runs them, the broker started on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from systemkit import QueueProducer

T = TypeVar("T")


def taskiq_producer(
    broker: Any,
    noop: Any,
    echo: Any,
    *,
    poll_s: float,
    result_timeout_s: float,
    enqueue_concurrency: int,
) -> QueueProducer:
    """A producer sending ``noop``/``echo`` through ``broker``, results polled every
    ``poll_s`` (taskiq's result backends are polled)."""
    loops: list[asyncio.AbstractEventLoop] = []  # the producer's one loop, once started

    def run(work: Coroutine[Any, Any, T]) -> T:
        if not loops:
            loops.append(asyncio.new_event_loop())
            # A stream broker declares its consumer group at the stream's end here:
            # W1's tasks, sent after, go to the workers that start later.
            loops[0].run_until_complete(broker.startup())
        return loops[0].run_until_complete(work)

    async def result(task: Any) -> Any:
        got = await task.wait_result(check_interval=poll_s, timeout=result_timeout_s)
        if got.is_err:
            raise RuntimeError(f"echo failed: {got.error!r}")
        return got.return_value

    async def enqueue_noops(n: int) -> None:
        # Many sends in flight share the round trips (each waits for its own confirm).
        slots = asyncio.Semaphore(enqueue_concurrency)

        async def one() -> None:
            async with slots:
                await noop.kiq()

        await asyncio.gather(*(one() for _ in range(n)))

    async def round_trip(i: int) -> Any:
        return await result(await echo.kiq(i))

    async def send_and_wait(n: int) -> list[Any]:
        tasks = [await echo.kiq(i) for i in range(n)]
        return [await result(task) for task in tasks]

    return QueueProducer(
        enqueue_noops=lambda n: run(enqueue_noops(n)),
        round_trip=lambda i: run(round_trip(i)),
        send_and_wait=lambda n: run(send_and_wait(n)),
    )
