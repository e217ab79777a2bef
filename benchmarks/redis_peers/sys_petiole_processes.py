"""Petiole again, with one worker on its ``processes`` pool (two children), for
comparison with the headline configuration in ``sys_petiole`` (two solo workers)."""

from __future__ import annotations

import sys

from common import produce
from sys_petiole import PREFETCH_MULTIPLIER, PRODUCER, app, remaining

__all__ = ["NAME", "PRODUCER", "app", "config", "remaining", "worker_commands"]

NAME = "Petiole -P processes"


def config() -> str:
    return f"1 x `petiole worker -P processes -c 2 --prefetch-multiplier {PREFETCH_MULTIPLIER}`"


def worker_commands() -> list[list[str]]:
    return [
        [
            *(sys.executable, "-m", "petiole", "worker", "-A", "sys_petiole:app"),
            *("-P", "processes", "-c", "2", "--prefetch-multiplier", str(PREFETCH_MULTIPLIER)),
            *("-l", "WARNING"),
        ]
    ]


if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
