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
from common import RESULT_TIMEOUT_S, Producer, produce, redis_url

from petiole import Petiole
from petiole.result import GroupResult

NAME = "Petiole"
QUEUE = "default"
PREFETCH_MULTIPLIER = int(os.environ.get("BENCH_PETIOLE_PREFETCH", "64"))
POOL = os.environ.get("BENCH_PETIOLE_POOL", "solo")
CONCURRENCY = int(os.environ.get("BENCH_PETIOLE_CONCURRENCY", "1"))
PROCESSES = int(os.environ.get("BENCH_PETIOLE_PROCESSES", "2"))

app = Petiole("bench", broker=redis_url(), backend=redis_url(), config_file=os.devnull)


@app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    pass


@app.task(name="bench.echo")
def echo(x: int) -> int:
    return x


def config() -> str:
    return (
        f"{PROCESSES} x `petiole worker -P {POOL} -c {CONCURRENCY} "
        f"--prefetch-multiplier {PREFETCH_MULTIPLIER}`"
    )


def worker_commands() -> list[list[str]]:
    command = [
        sys.executable,
        "-m",
        "petiole",
        "worker",
        "-A",
        "sys_petiole:app",
        "-P",
        POOL,
        "-c",
        str(CONCURRENCY),
        "--prefetch-multiplier",
        str(PREFETCH_MULTIPLIER),
        "-l",
        "WARNING",
    ]
    return [command] * PROCESSES


def remaining(client: redis.Redis) -> int:
    """Messages not yet acknowledged (queued, prefetched or running)."""
    return int(client.hlen(f"petiole:msgs:{{{QUEUE}}}"))


def _send_and_wait(n: int) -> list[Any]:
    results = [echo.delay(i) for i in range(n)]
    return GroupResult(str(uuid.uuid4()), results, app).get(timeout=RESULT_TIMEOUT_S)


PRODUCER = Producer(
    enqueue_noops=lambda n: [noop.delay() for _ in range(n)] and None,
    round_trip=lambda i: echo.delay(i).get(timeout=RESULT_TIMEOUT_S),
    send_and_wait=_send_and_wait,
)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
