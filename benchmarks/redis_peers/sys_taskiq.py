"""taskiq (latest from PyPI) with taskiq-redis's ``RedisStreamBroker`` (a Redis stream
and a consumer group: acknowledged deliveries, taskiq-redis's broker with acks) and
``RedisAsyncResultBackend``.

Default: ``taskiq worker sys_taskiq:broker`` with no option: two worker processes,
each an asyncio loop running up to 100 tasks at once, acknowledging once the result
is saved (``--ack-type when_saved``). Best: the same (see ``FLAGS``). taskiq stores a result
for every task, ``noop`` included (it has no per-task switch for that). The tasks
are ``async def``, taskiq's own kind.

``wait_result`` polls the result backend every ``check_interval`` (0.2 s by default,
which would make W3 measure the poll); the producer polls every
``BENCH_TASKIQ_POLL_MS`` (1 ms) instead, with either flags.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import redis
from common import RESULT_TIMEOUT_S, Flags, produce
from systemkit import env_int, redis_url
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker
from taskiqkit import taskiq_producer

NAME = "taskiq"
QUEUE = "taskiq"
GROUP = "taskiq"
BROKER = "sys_taskiq:broker"
POLL_S = env_int("BENCH_TASKIQ_POLL_MS", 1) / 1000
RESULT_TTL_S = 86400
# Sends in flight at once while W1's tasks are enqueued (each send is a round trip).
ENQUEUE_CONCURRENCY = 32


def _worker(options: list[str]) -> list[str]:
    return [sys.executable, "-m", "taskiq", "worker", BROKER, *options, "--log-level", "WARNING"]


_DEFAULT = Flags(
    commands=[_worker([])],
    shown=f"taskiq worker {BROKER}",
    # Its few hundred tasks a second get a quarter of the sizes (rates are per second).
    scale=0.25,
)
FLAGS = {
    "default": _DEFAULT,
    "best": replace(
        _DEFAULT,
        why="its defaults: of the flags that keep its acknowledgement after the result is "
        "saved, none drained faster or cheaper here (--max-prefetch 64, --max-async-tasks "
        "10, --max-async-tasks 1000 --max-prefetch 200: W1 within noise, more CPU per task)",
        same_as="default",
    ),
}

broker = RedisStreamBroker(redis_url(), queue_name=QUEUE, consumer_group_name=GROUP)
broker = broker.with_result_backend(
    RedisAsyncResultBackend(redis_url(), result_ex_time=RESULT_TTL_S)
)


@broker.task(task_name="noop")
async def noop() -> None:
    pass


@broker.task(task_name="echo")
async def echo(x: int) -> int:
    return x


def remaining(client: redis.Redis) -> int:
    """Entries of the stream not yet delivered to the group (``lag``) plus those
    delivered and not yet acknowledged (``pending``)."""
    for group in client.xinfo_groups(QUEUE):
        if group["name"] in (GROUP, GROUP.encode()):
            return int(group["lag"] or 0) + int(group["pending"])
    raise RuntimeError(f"taskiq: no consumer group {GROUP!r} on stream {QUEUE!r}")


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
    produce(PRODUCER, sys.argv[1:])
