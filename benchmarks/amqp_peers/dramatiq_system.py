"""What the Dramatiq system modules share: its RabbitmqBroker with the Results
middleware on a Redis backend, the two actors, the producer and the workers. Each
``sys_dramatiq*.py`` picks ``confirm_delivery``.

Workers: ``dramatiq`` with two processes of several threads each, the flags the
Redis benchmark runs it with (see ``config()``). Dramatiq declares classic queues
(no ``x-queue-type``) and acknowledges after the task ran.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dramatiq
from common import ENQUEUE_CONCURRENCY, RESULT_TIMEOUT_S, amqp_url
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend
from systemkit import QueueProducer, env_int, redis_url

QUEUE = "default"
QUEUES = (QUEUE, f"{QUEUE}.DQ", f"{QUEUE}.XQ")  # the queue, its delay and dead-letter queues
PROCESSES = 2
THREADS = env_int("BENCH_DRAMATIQ_THREADS", 8)  # Dramatiq's default
# Messages each worker process holds (Dramatiq's default is 2 x threads): read by
# Dramatiq from this environment variable; 64 drained fastest on Redis.
PREFETCH = os.environ.get("BENCH_DRAMATIQ_PREFETCH", "64")
WORKER_ENV = {"dramatiq_queue_prefetch": PREFETCH}


@dataclass(frozen=True)
class DramatiqSystem:
    broker: RabbitmqBroker
    producer: QueueProducer


def make_system(*, confirm_delivery: bool) -> DramatiqSystem:
    """The broker (the workers' ``module:broker``), its actors and the producer. The
    actors name their broker, so two variants can be imported into one process."""
    broker = RabbitmqBroker(url=amqp_url(), confirm_delivery=confirm_delivery)
    broker.add_middleware(Results(backend=RedisBackend(url=redis_url())))
    dramatiq.set_broker(broker)

    @dramatiq.actor(actor_name="noop", max_retries=0, broker=broker)
    def noop() -> None:
        pass

    @dramatiq.actor(actor_name="echo", max_retries=0, store_results=True, broker=broker)
    def echo(x: int) -> int:
        return x

    def enqueue_noops(n: int) -> None:
        if not confirm_delivery:
            for _ in range(n):
                noop.send()
            return
        # Each thread has its own connection, each send waits for its own confirm.
        with ThreadPoolExecutor(ENQUEUE_CONCURRENCY) as pool:
            for _ in pool.map(lambda _: noop.send(), range(n)):
                pass

    def send_and_wait(n: int) -> list[Any]:
        messages = [echo.send(i) for i in range(n)]
        return [_wait(m) for m in messages]

    producer = QueueProducer(
        enqueue_noops=enqueue_noops,
        round_trip=lambda i: _wait(echo.send(i)),
        send_and_wait=send_and_wait,
    )
    return DramatiqSystem(broker, producer)


def _wait(message: Any) -> Any:
    return message.get_result(block=True, timeout=int(RESULT_TIMEOUT_S * 1000))


def config() -> str:
    return (
        f"`dramatiq --processes {PROCESSES} --threads {THREADS}` with "
        f"dramatiq_queue_prefetch={PREFETCH}"
    )


def worker_commands(module: str) -> list[list[str]]:
    """The workers of the broker defined in ``module`` (as ``broker``)."""
    return [
        [
            *(sys.executable, "-m", "dramatiq", f"{module}:broker"),
            *("--processes", str(PROCESSES), "--threads", str(THREADS)),
        ]
    ]
