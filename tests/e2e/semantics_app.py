"""Tasks for the worker-semantics tests that need the processes pool (an app
importable by path). Broker and results come from PETIOLE_* variables."""

from __future__ import annotations

import os
import time

from petiole import Petiole
from petiole.errors import SoftTimeLimitExceeded

app = Petiole("semantics")


@app.task(name="sem.pid")
def pid() -> int:
    return os.getpid()


@app.task(name="sem.sleep")
def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


@app.task(name="sem.sleep_and_clean_up")
def sleep_and_clean_up(seconds: float) -> str:
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "slept"


@app.task(name="sem.allocate")
def allocate(megabytes: int) -> int:
    """Grow this process by about ``megabytes`` (kept alive on purpose)."""
    _kept.append(bytearray(megabytes * 2**20))
    return os.getpid()


@app.task(name="sem.exit")
def exit_process() -> None:
    os._exit(7)


_kept: list[bytearray] = []
