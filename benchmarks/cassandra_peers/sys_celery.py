"""Celery (latest from PyPI): Redis broker, its own ``cassandra`` result backend.

Celery's Cassandra backend (``celery/backends/cassandra.py``) connects to an
existing keyspace and creates its table from the workers on first write, so the
runner creates both first (``prepare``), with the CQL that backend uses. Its
chords have no native join on Cassandra: Celery falls back to the
``celery.chord_unlock`` task, which polls the members' results (every second,
its default) until all are ready, then calls the callback.

Workers: one ``celery worker`` (see ``config()``; the threads pool with 8 threads was
its best here, see benchmarks/README.md). Celery's defaults are kept
where they are its fast path: acknowledgement *before* the task runs
(``task_acks_late=False``), JSON.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import Celery, chord
from celery.result import ResultSet
from common import (
    CELERY_KEYSPACE,
    CELERY_TABLE,
    RESULT_TIMEOUT_S,
    RESULT_TTL_S,
    cassandra_host_port,
    define_tasks,
    delay_producer,
    produce,
)
from systemkit import celery_options, celery_worker, env_int, redis_url

NAME = "Celery"
PREFETCH_MULTIPLIER = env_int("BENCH_CELERY_PREFETCH", 64)
POOL = os.environ.get("BENCH_CELERY_POOL", "threads")
CONCURRENCY = env_int("BENCH_CELERY_CONCURRENCY", 8)
OPTIONS = celery_options(POOL, CONCURRENCY, PREFETCH_MULTIPLIER)

_host, _port = cassandra_host_port()
app = Celery("bench", broker=redis_url(), backend="cassandra://")
app.conf.update(
    cassandra_servers=[_host],
    cassandra_port=_port,
    cassandra_keyspace=CELERY_KEYSPACE,
    cassandra_table=CELERY_TABLE,
    cassandra_entry_ttl=RESULT_TTL_S,
    # Petiole's defaults, also Celery's: on one node the same as ONE.
    cassandra_read_consistency="LOCAL_QUORUM",
    cassandra_write_consistency="LOCAL_QUORUM",
    worker_prefetch_multiplier=PREFETCH_MULTIPLIER,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=RESULT_TTL_S,
)
echo, tsum = define_tasks(app)


def config() -> str:
    return (
        f"1 x `celery worker {' '.join(OPTIONS)}`, "
        f"results cassandra:// ({CELERY_KEYSPACE}.{CELERY_TABLE}, LOCAL_QUORUM)"
    )


def prepare() -> None:
    """The keyspace (replication 1: one node) and the table of Celery's backend
    (its own ``Q_CREATE_RESULT_TABLE``)."""
    from cassandra.cluster import Cluster
    from celery.backends.cassandra import Q_CREATE_RESULT_TABLE

    cluster = Cluster([_host], port=_port)
    try:
        session = cluster.connect()
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {CELERY_KEYSPACE} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}",
            timeout=60,
        )
        create = Q_CREATE_RESULT_TABLE.format(table=f"{CELERY_KEYSPACE}.{CELERY_TABLE}")
        session.execute(create.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"), timeout=60)
    finally:
        cluster.shutdown()


def worker_commands() -> list[list[str]]:
    return [celery_worker("sys_celery", OPTIONS)]


def _send_and_wait(n: int) -> list[Any]:
    results = ResultSet([echo.delay(i) for i in range(n)])
    return list(results.get(timeout=RESULT_TIMEOUT_S))


PRODUCER = delay_producer(echo, tsum, chord=chord, send_and_wait=_send_and_wait)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
