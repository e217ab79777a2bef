"""Petiole with petiole-redis as broker and result backend.

Default: ``petiole worker -A sys_petiole:app`` with no option (prefork: one worker
process per CPU, each running its own tasks, 16 messages each). Best: two worker
processes under one supervisor (``--workers 2``), each ``-P solo --prefetch-multiplier
64``. Late acknowledgement and leases are always on (Petiole's at-least-once contract),
in both.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import TYPE_CHECKING, Any

from common import RESULT_TIMEOUT_S, Flags, define_tasks, delay_producer, produce
from systemkit import env_int, petiole_worker, pool_options, redis_url

from petiole import Petiole
from petiole.result import GroupResult

if TYPE_CHECKING:
    import redis  # the runner's client, never the worker's: see common.py

NAME = "Petiole"
QUEUE = "default"
APP = "sys_petiole:app"
BEST_PROCESSES = env_int("BENCH_PETIOLE_PROCESSES", 2)
BEST_OPTIONS = [
    *("--workers", str(BEST_PROCESSES)),
    *pool_options(
        os.environ.get("BENCH_PETIOLE_POOL", "solo"),
        env_int("BENCH_PETIOLE_CONCURRENCY", 1),
        env_int("BENCH_PETIOLE_PREFETCH", 64),
    ),
]

FLAGS = {
    "default": Flags(commands=[petiole_worker(APP, [])], shown=f"petiole worker -A {APP}"),
    "best": Flags(
        commands=[petiole_worker(APP, BEST_OPTIONS)],
        shown=f"petiole worker -A {APP} {' '.join(BEST_OPTIONS)}",
        why="each worker process reserves and runs its own tasks, one at a time: no "
        "hand-off to a child; "
        "prefetch 64 makes a reserve and an ack batch per 64 tasks (16 -> 64: W1 +15 %)",
    ),
}

# BENCH_PETIOLE_BROKER_QUERY: options for the broker's URL, e.g. "?layout=lists".
BROKER_URL = redis_url() + os.environ.get("BENCH_PETIOLE_BROKER_QUERY", "")
app = Petiole("bench", broker=BROKER_URL, backend=redis_url(), config_file=os.devnull)
noop, echo = define_tasks(app)


def remaining(client: redis.Redis) -> int:
    """Messages not yet acknowledged (queued, prefetched or running): the streams
    layout (the default) keeps each in its stream (priority 0) until then, the list
    layout in a hash."""
    if "layout=lists" in BROKER_URL:
        return int(client.hlen(f"petiole:msgs:{{{QUEUE}}}"))
    return int(client.xlen(f"petiole:stream0:{{{QUEUE}}}"))


def _wait_all(results: list[Any]) -> list[Any]:
    return GroupResult(str(uuid.uuid4()), results, app).get(timeout=RESULT_TIMEOUT_S)


def _send_and_wait(n: int) -> list[Any]:
    return _wait_all([echo.delay(i) for i in range(n)])


def _send_batch_and_wait(n: int) -> list[Any]:
    """``delay_many``: pipelined in batches of 500, each durable before the next."""
    return _wait_all(echo.delay_many((i,) for i in range(n)))


PRODUCER = delay_producer(noop, echo, _send_and_wait, _send_batch_and_wait)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
