"""Petiole: petiole-redis as broker, petiole-cassandra (``cassandra://``) for results.

Workers: ``PROCESSES`` ``petiole worker`` processes (see ``config()``), late
acknowledgement and leases always on (Petiole's at-least-once contract). The
backend runs with its defaults: ``LOCAL_QUORUM`` reads and writes, results kept
one day, ``wait`` polling from 10 ms up to 0.5 s.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

from common import (
    PETIOLE_KEYSPACE,
    RESULT_TIMEOUT_S,
    cassandra_host_port,
    define_tasks,
    delay_producer,
    produce,
)
from systemkit import env_int, petiole_worker, pool_options, redis_url

from petiole import Petiole, chord
from petiole.result import GroupResult

NAME = "Petiole"
PREFETCH_MULTIPLIER = env_int("BENCH_PETIOLE_PREFETCH", 64)
POOL = os.environ.get("BENCH_PETIOLE_POOL", "threads")
CONCURRENCY = env_int("BENCH_PETIOLE_CONCURRENCY", 4)
PROCESSES = env_int("BENCH_PETIOLE_PROCESSES", 2)
OPTIONS = pool_options(POOL, CONCURRENCY, PREFETCH_MULTIPLIER)


def backend_url() -> str:
    host, port = cassandra_host_port()
    return f"cassandra://{host}:{port}/{PETIOLE_KEYSPACE}"


app = Petiole("bench", broker=redis_url(), backend=backend_url(), config_file=os.devnull)
echo, tsum = define_tasks(app)


def config() -> str:
    return (
        f"{PROCESSES} x `petiole worker {' '.join(OPTIONS)}`, results "
        f"cassandra://<node>/{PETIOLE_KEYSPACE} (defaults: LOCAL_QUORUM)"
    )


def prepare() -> None:
    """Create the keyspace and tables (the backend's first use) before any worker runs."""
    app.backend  # noqa: B018 - connecting creates the schema
    app.close()


def worker_commands() -> list[list[str]]:
    return [petiole_worker("sys_petiole:app", OPTIONS)] * PROCESSES


def _send_and_wait(n: int) -> list[Any]:
    results = [echo.delay(i) for i in range(n)]
    return GroupResult(str(uuid.uuid4()), results, app).get(timeout=RESULT_TIMEOUT_S)


PRODUCER = delay_producer(echo, tsum, chord=chord, send_and_wait=_send_and_wait)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
