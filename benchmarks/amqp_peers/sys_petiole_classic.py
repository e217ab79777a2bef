"""Petiole as in ``sys_petiole``, with ``broker_options`` ``queue_type = "classic"``:
the queue type Celery and Dramatiq declare, for a like-for-like comparison."""

from __future__ import annotations

import sys

import petiole_system
from common import Setup
from petiole_system import QUEUE, QUEUES, config, make_app, make_producer
from systemkit import define_tasks, produce_queue_workloads, redis_url

__all__ = ["NAME", "PRODUCER", "QUEUE", "QUEUES", "SETUP", "app", "config", "worker_commands"]

NAME = "Petiole classic"
SETUP = Setup(queue_type="classic", confirms=petiole_system.CONFIRMS, results="Redis")

app = make_app(backend=redis_url(), broker_options={"queue_type": "classic"})
noop, echo = define_tasks(app)
PRODUCER = make_producer(app, noop, echo)


def worker_commands() -> list[list[str]]:
    return petiole_system.worker_commands("sys_petiole_classic")


if __name__ == "__main__":
    produce_queue_workloads(PRODUCER, sys.argv[1:])
