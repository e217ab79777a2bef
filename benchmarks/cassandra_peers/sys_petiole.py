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
    Producer,
    cassandra_host_port,
    produce,
    redis_url,
)

from petiole import Petiole, chord
from petiole.result import GroupResult

NAME = "Petiole"
PREFETCH_MULTIPLIER = int(os.environ.get("BENCH_PETIOLE_PREFETCH", "64"))
POOL = os.environ.get("BENCH_PETIOLE_POOL", "threads")
CONCURRENCY = int(os.environ.get("BENCH_PETIOLE_CONCURRENCY", "4"))
PROCESSES = int(os.environ.get("BENCH_PETIOLE_PROCESSES", "2"))


def backend_url() -> str:
    host, port = cassandra_host_port()
    return f"cassandra://{host}:{port}/{PETIOLE_KEYSPACE}"


app = Petiole("bench", broker=redis_url(), backend=backend_url(), config_file=os.devnull)


@app.task(name="bench.echo")
def echo(x: int) -> int:
    return x


@app.task(name="bench.tsum")
def tsum(values: list[int]) -> int:
    return sum(values)


def config() -> str:
    return (
        f"{PROCESSES} x `petiole worker -P {POOL} -c {CONCURRENCY} "
        f"--prefetch-multiplier {PREFETCH_MULTIPLIER}`, results "
        f"cassandra://<node>/{PETIOLE_KEYSPACE} (defaults: LOCAL_QUORUM)"
    )


def prepare() -> None:
    """Create the keyspace and tables (the backend's first use) before any worker runs."""
    app.backend  # noqa: B018 - connecting creates the schema
    app.close()


def worker_commands() -> list[list[str]]:
    command = [
        *(sys.executable, "-m", "petiole", "worker", "-A", "sys_petiole:app"),
        *("-P", POOL, "-c", str(CONCURRENCY)),
        *("--prefetch-multiplier", str(PREFETCH_MULTIPLIER), "-l", "WARNING"),
    ]
    return [command] * PROCESSES


def _send_and_wait(n: int) -> list[Any]:
    results = [echo.delay(i) for i in range(n)]
    return GroupResult(str(uuid.uuid4()), results, app).get(timeout=RESULT_TIMEOUT_S)


def _chord(n: int) -> Any:
    return chord(echo.s(i) for i in range(n))(tsum.s()).get(timeout=RESULT_TIMEOUT_S)


PRODUCER = Producer(
    round_trip=lambda i: echo.delay(i).get(timeout=RESULT_TIMEOUT_S),
    send_and_wait=_send_and_wait,
    chord=_chord,
)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
