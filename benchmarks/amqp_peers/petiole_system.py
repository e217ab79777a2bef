"""What the Petiole system modules share: the app on the ``amqp://`` broker, its
producer, and its workers. Each ``sys_petiole*.py`` picks the broker options and the
result backend; the rest is here, so another variant (say ``sys_petiole_rpc`` with
``backend="rpc://..."``, once that backend exists) is one small module.

Workers: ``PROCESSES`` ``petiole worker`` processes (two solo workers by default, as in
``redis_peers``). Late acknowledgement always (Petiole's at-least-once contract);
every send waits for RabbitMQ's publisher confirm (the transport always confirms).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

from common import RESULT_TIMEOUT_S, amqp_url
from systemkit import (
    QueueProducer,
    delay_producer,
    env_int,
    petiole_worker,
    pool_options,
)

from petiole import Petiole
from petiole.result import GroupResult
from petiole.transport import publishing_in_batches

QUEUE = "default"
QUEUES = (QUEUE, f"{QUEUE}.petiole-dead")
CONFIRMS = "yes, always (W1/W2 sends in one batch of confirms, W3 one by one)"
PREFETCH_MULTIPLIER = env_int("BENCH_PETIOLE_PREFETCH", 64)
POOL = os.environ.get("BENCH_PETIOLE_POOL", "solo")
CONCURRENCY = env_int("BENCH_PETIOLE_CONCURRENCY", 1)
PROCESSES = env_int("BENCH_PETIOLE_PROCESSES", 2)
OPTIONS = pool_options(POOL, CONCURRENCY, PREFETCH_MULTIPLIER)


def make_app(*, backend: str, broker_options: Mapping[str, Any] | None = None) -> Petiole:
    """The app on the benchmark's RabbitMQ node (``broker_options`` as in petiole.toml)."""
    return Petiole(
        "bench",
        broker=amqp_url(),
        backend=backend,
        config_file=os.devnull,
        broker_options=dict(broker_options or {}),
    )


def make_producer(app: Petiole, noop: Any, echo: Any) -> QueueProducer:
    """W1's tasks are enqueued, and W2's sent, through the bulk API: in one publish
    batch, whose confirms are waited for together at its end (a group's members go
    out that way). W3 sends one task at a time, each waiting for its confirm."""

    def enqueue_noops(n: int) -> None:
        with publishing_in_batches(app.transport):
            for _ in range(n):
                noop.delay()

    def send_and_wait(n: int) -> list[Any]:
        with publishing_in_batches(app.transport):
            results = [echo.delay(i) for i in range(n)]
        return GroupResult(str(uuid.uuid4()), results, app).get(timeout=RESULT_TIMEOUT_S)

    return delay_producer(
        noop,
        echo,
        send_and_wait,
        result_timeout_s=RESULT_TIMEOUT_S,
        enqueue_noops=enqueue_noops,
    )


def config() -> str:
    return f"{PROCESSES} x `petiole worker {' '.join(OPTIONS)}`"


def worker_commands(module: str) -> list[list[str]]:
    """The workers of the app defined in ``module`` (as ``app``)."""
    return [petiole_worker(f"{module}:app", OPTIONS)] * PROCESSES
