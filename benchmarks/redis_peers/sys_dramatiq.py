"""Dramatiq (latest from PyPI, ``dramatiq[redis]``): Redis broker, Results middleware
with its Redis backend.

Workers: ``dramatiq`` with two processes of several threads each (see ``config()``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import dramatiq
import redis
from common import RESULT_TIMEOUT_S, Producer, produce
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend
from systemkit import env_int, redis_url

NAME = "Dramatiq"
QUEUE = "default"
PROCESSES = 2
THREADS = env_int("BENCH_DRAMATIQ_THREADS", 8)  # Dramatiq's default
# Messages each worker process holds (Dramatiq's default is 2 x threads): read by
# Dramatiq from this environment variable; 64 drained fastest here.
PREFETCH = os.environ.get("BENCH_DRAMATIQ_PREFETCH", "64")
WORKER_ENV = {"dramatiq_queue_prefetch": PREFETCH}

backend = RedisBackend(url=redis_url())
broker = RedisBroker(url=redis_url())
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop", max_retries=0)
def noop() -> None:
    pass


@dramatiq.actor(actor_name="echo", max_retries=0, store_results=True)
def echo(x: int) -> int:
    return x


def config() -> str:
    return (
        f"`dramatiq --processes {PROCESSES} --threads {THREADS}` with "
        f"dramatiq_queue_prefetch={PREFETCH}"
    )


def worker_commands() -> list[list[str]]:
    return [
        [
            sys.executable,
            "-m",
            "dramatiq",
            "sys_dramatiq",
            "--processes",
            str(PROCESSES),
            "--threads",
            str(THREADS),
        ]
    ]


def remaining(client: redis.Redis) -> int:
    """Messages not yet acknowledged (Dramatiq keeps each one in this hash until then)."""
    return int(client.hlen(f"dramatiq:{QUEUE}.msgs"))


def _wait(message: Any) -> Any:
    return message.get_result(block=True, timeout=int(RESULT_TIMEOUT_S * 1000))


def _send_and_wait(n: int) -> list[Any]:
    messages = [echo.send(i) for i in range(n)]
    return [_wait(m) for m in messages]


PRODUCER = Producer(
    enqueue_noops=lambda n: [noop.send() for _ in range(n)] and None,
    round_trip=lambda i: _wait(echo.send(i)),
    send_and_wait=_send_and_wait,
)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
