"""Petiole with petiole-amqp as broker (quorum queues, its default) and petiole-redis
as result backend (``rpc://`` does not exist yet)."""

from __future__ import annotations

import sys

import petiole_system
from common import Setup
from petiole_system import QUEUE, QUEUES, config, make_app, make_producer
from systemkit import define_tasks, produce_queue_workloads, redis_url

__all__ = ["NAME", "PRODUCER", "QUEUE", "QUEUES", "SETUP", "app", "config", "worker_commands"]

NAME = "Petiole"
SETUP = Setup(queue_type="quorum", confirms=petiole_system.CONFIRMS, results="Redis")

app = make_app(backend=redis_url())
noop, echo = define_tasks(app)
PRODUCER = make_producer(app, noop, echo)


def worker_commands() -> list[list[str]]:
    return petiole_system.worker_commands("sys_petiole")


if __name__ == "__main__":
    produce_queue_workloads(PRODUCER, sys.argv[1:])
