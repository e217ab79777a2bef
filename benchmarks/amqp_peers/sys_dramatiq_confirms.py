"""Dramatiq as in ``sys_dramatiq``, with ``confirm_delivery=True``: each send waits for
RabbitMQ's publisher confirm, as Petiole's always does (issue #16's W2 target)."""

from __future__ import annotations

import sys

import dramatiq_system
from common import Setup
from dramatiq_system import QUEUE, QUEUES, WORKER_ENV, config, make_system
from systemkit import produce_queue_workloads

__all__ = ["NAME", "PRODUCER", "QUEUE", "QUEUES", "SETUP", "WORKER_ENV", "broker", "config"]

NAME = "Dramatiq confirms"
SETUP = Setup(queue_type="classic", confirms="yes (confirm_delivery=True)", results="Redis")

_system = make_system(confirm_delivery=True)
broker = _system.broker
PRODUCER = _system.producer


def worker_commands() -> list[list[str]]:
    return dramatiq_system.worker_commands("sys_dramatiq_confirms")


if __name__ == "__main__":
    produce_queue_workloads(PRODUCER, sys.argv[1:])
