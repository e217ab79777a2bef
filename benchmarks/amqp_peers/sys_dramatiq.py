"""Dramatiq (latest from PyPI, ``dramatiq[rabbitmq,redis]``): RabbitmqBroker with its
defaults (``confirm_delivery=False``), Results middleware on its Redis backend."""

from __future__ import annotations

import sys

import dramatiq_system
from common import Setup
from dramatiq_system import QUEUE, QUEUES, WORKER_ENV, config, make_system
from systemkit import produce_queue_workloads

__all__ = ["NAME", "PRODUCER", "QUEUE", "QUEUES", "SETUP", "WORKER_ENV", "broker", "config"]

NAME = "Dramatiq"
SETUP = Setup(
    queue_type="classic", confirms="no (confirm_delivery=False, its default)", results="Redis"
)

_system = make_system(confirm_delivery=False)
broker = _system.broker
PRODUCER = _system.producer


def worker_commands() -> list[list[str]]:
    return dramatiq_system.worker_commands("sys_dramatiq")


if __name__ == "__main__":
    produce_queue_workloads(PRODUCER, sys.argv[1:])
