"""Petiole with petiole-redis as broker and result backend.

Workers: ``PROCESSES`` ``petiole worker`` processes (two solo workers by default,
see ``config()``). Late acknowledgement and leases are always on (Petiole's
at-least-once contract).
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

import redis
from common import RESULT_TIMEOUT_S, define_tasks, delay_producer, produce
from systemkit import env_int, petiole_worker, pool_options, redis_url

from petiole import Petiole
from petiole.result import GroupResult

NAME = "Petiole"
QUEUE = "default"
PREFETCH_MULTIPLIER = env_int("BENCH_PETIOLE_PREFETCH", 64)
POOL = os.environ.get("BENCH_PETIOLE_POOL", "solo")
CONCURRENCY = env_int("BENCH_PETIOLE_CONCURRENCY", 1)
PROCESSES = env_int("BENCH_PETIOLE_PROCESSES", 2)
OPTIONS = pool_options(POOL, CONCURRENCY, PREFETCH_MULTIPLIER)

app = Petiole("bench", broker=redis_url(), backend=redis_url(), config_file=os.devnull)
noop, echo = define_tasks(app)


def config() -> str:
    return f"{PROCESSES} x `petiole worker {' '.join(OPTIONS)}`"


def worker_commands() -> list[list[str]]:
    return [petiole_worker("sys_petiole:app", OPTIONS)] * PROCESSES


def remaining(client: redis.Redis) -> int:
    """Messages not yet acknowledged (queued, prefetched or running)."""
    return int(client.hlen(f"petiole:msgs:{{{QUEUE}}}"))


def _send_and_wait(n: int) -> list[Any]:
    results = [echo.delay(i) for i in range(n)]
    return GroupResult(str(uuid.uuid4()), results, app).get(timeout=RESULT_TIMEOUT_S)


PRODUCER = delay_producer(noop, echo, _send_and_wait)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
