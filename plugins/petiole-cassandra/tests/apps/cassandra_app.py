"""Tasks the end-to-end tests (tests/e2e/test_cassandra_*.py) run in worker processes.

Broker and results come from PETIOLE_* variables set by the test; workers find
this module through PYTHONPATH (see ``app_env`` in those tests).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from petiole import Petiole

app = Petiole("cassandra-e2e")


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # One small O_APPEND write lands whole, whoever else appends.
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@app.task(name="cass.member", bind=True)
def member(self: Any, x: int, log_path: str, delay_s: float) -> int:
    """A chord member: logs each execution (with its delivery count), then squares."""
    _append(log_path, f"{self.request.id} {x} {self.request.delivery_count}")
    time.sleep(delay_s)
    return x * x


@app.task(name="cass.callback")
def callback(values: list[int], log_path: str) -> int:
    """The chord callback: one line per execution, holding every value it got."""
    _append(log_path, json.dumps(values))
    return len(values)


@app.task(name="cass.square")
def square(x: int) -> int:
    return x * x


@app.task(name="cass.huge")
def huge(size: int) -> str:
    """A result larger than Cassandra accepts in one write."""
    return "x" * size
