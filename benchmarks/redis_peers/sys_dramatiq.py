"""Dramatiq (latest from PyPI, ``dramatiq[redis]``): Redis broker, Results middleware
with its Redis backend.

Default: ``dramatiq sys_dramatiq`` with no option (a process per CPU, 8 threads each,
a prefetch of 2 x threads). Best: see ``FLAGS``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import dramatiq
import redis
from common import RESULT_TIMEOUT_S, Flags, Producer, produce
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend
from systemkit import env_int, redis_url

NAME = "Dramatiq"
QUEUE = "default"
MODULE = "sys_dramatiq"
BEST_PROCESSES = env_int("BENCH_DRAMATIQ_PROCESSES", 2)
BEST_THREADS = env_int("BENCH_DRAMATIQ_THREADS", 8)
# Messages each worker process holds (Dramatiq's default is 2 x threads): read by
# Dramatiq from this environment variable.
BEST_PREFETCH = os.environ.get("BENCH_DRAMATIQ_PREFETCH", "64")
BEST_OPTIONS = ["--processes", str(BEST_PROCESSES), "--threads", str(BEST_THREADS)]

FLAGS = {
    "default": Flags(
        commands=[[sys.executable, "-m", "dramatiq", MODULE]], shown=f"dramatiq {MODULE}"
    ),
    "best": Flags(
        commands=[[sys.executable, "-m", "dramatiq", MODULE, *BEST_OPTIONS]],
        shown=f"dramatiq {MODULE} {' '.join(BEST_OPTIONS)}, "
        f"dramatiq_queue_prefetch={BEST_PREFETCH}",
        why="threads 1/4/8/16/32 and prefetch 16-256 swept: 8 threads (its default) "
        "with prefetch 64 drained fastest; one process per core",
        env={"dramatiq_queue_prefetch": BEST_PREFETCH},
    ),
}

# Dramatiq's constructors are not annotated.
backend = RedisBackend(url=redis_url())  # type: ignore[no-untyped-call]
broker = RedisBroker(url=redis_url())  # type: ignore[no-untyped-call]
broker.add_middleware(Results(backend=backend))  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop", max_retries=0)
def noop() -> None:
    pass


@dramatiq.actor(actor_name="echo", max_retries=0, store_results=True)
def echo(x: int) -> int:
    return x


def remaining(client: redis.Redis) -> int:
    """Messages not yet acknowledged (Dramatiq keeps each one in this hash until then)."""
    return int(client.hlen(f"dramatiq:{QUEUE}.msgs"))


def _wait(message: Any) -> Any:
    return message.get_result(block=True, timeout=int(RESULT_TIMEOUT_S * 1000))


def _enqueue_noops(n: int) -> None:
    for _ in range(n):
        noop.send()


def _send_and_wait(n: int) -> list[Any]:
    messages = [echo.send(i) for i in range(n)]
    return [_wait(m) for m in messages]


def _send_batch_and_wait(n: int) -> list[Any]:
    """A ``group``: Dramatiq's call for many messages at once."""
    batch = dramatiq.group(echo.message(i) for i in range(n)).run()  # type: ignore[no-untyped-call]
    return list(batch.get_results(block=True, timeout=int(RESULT_TIMEOUT_S * 1000)))


PRODUCER = Producer(
    enqueue_noops=_enqueue_noops,
    round_trip=lambda i: _wait(echo.send(i)),
    send_and_wait=_send_and_wait,
    send_batch_and_wait=_send_batch_and_wait,
)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
