"""Petiole as in ``sys_petiole`` (quorum queues), with results over ``rpc://``: each
result comes back to the producer as a message on its own reply queue, nothing stored."""

from __future__ import annotations

import sys

import petiole_system
from common import Setup
from petiole_system import QUEUE, QUEUES, config, make_app, make_producer
from systemkit import define_tasks, produce_queue_workloads

__all__ = ["NAME", "PRODUCER", "QUEUE", "QUEUES", "SETUP", "app", "config", "worker_commands"]

NAME = "Petiole rpc"
SETUP = Setup(queue_type="quorum", confirms=petiole_system.CONFIRMS, results="rpc://")

app = make_app(backend="rpc://")
noop, echo = define_tasks(app)
PRODUCER = make_producer(app, noop, echo)


def worker_commands() -> list[list[str]]:
    return petiole_system.worker_commands("sys_petiole_rpc")


if __name__ == "__main__":
    produce_queue_workloads(PRODUCER, sys.argv[1:])
