"""Petiole again, with one worker on its ``processes`` pool (two children), for
comparison with the headline configuration in ``sys_petiole`` (two solo workers)."""

from __future__ import annotations

import sys

from common import produce
from sys_petiole import PREFETCH_MULTIPLIER, PRODUCER, app, remaining
from systemkit import petiole_worker, pool_options

__all__ = ["NAME", "PRODUCER", "app", "config", "remaining", "worker_commands"]

NAME = "Petiole -P processes"
OPTIONS = pool_options("processes", 2, PREFETCH_MULTIPLIER)


def config() -> str:
    return f"1 x `petiole worker {' '.join(OPTIONS)}`"


def worker_commands() -> list[list[str]]:
    return [petiole_worker("sys_petiole:app", OPTIONS)]


if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
