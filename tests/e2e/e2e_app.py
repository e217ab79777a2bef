"""The app the end-to-end tests run in separate worker processes.

Its broker and results come from PETIOLE_* environment variables set by the test.
"""

from __future__ import annotations

import os
import time
from typing import Any

from petiole import Petiole

app = Petiole("e2e")


@app.task(name="e2e.square")
def square(x: int) -> int:
    return x * x


@app.task(name="e2e.slow_square")
def slow_square(x: int, delay_s: float) -> int:
    time.sleep(delay_s)
    return x * x


@app.task(name="e2e.die_once", bind=True)
def die_once(self: Any) -> int:
    """Kills its pool child on the first delivery; succeeds on the redelivery."""
    if self.request.delivery_count == 1:
        os._exit(3)
    return int(self.request.delivery_count)


@app.task(name="e2e.pid")
def pid() -> int:
    return os.getpid()


@app.task(name="e2e.logged_square", bind=True)
def logged_square(self: Any, x: int, log_path: str, delay_s: float = 0.0) -> int:
    """Appends ``<task id> <x> <pid>`` to ``log_path`` as it starts, so a test can
    count every execution, including one cut short by a SIGKILL."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # One small O_APPEND write lands whole or not at all, whoever else appends.
        os.write(fd, f"{self.request.id} {x} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    if delay_s > 0:
        time.sleep(delay_s)
    return x * x


@app.task(name="e2e.started_at", bind=True)
def started_at(self: Any) -> dict[str, float | None]:
    """When the body started, and the ETA its message carried."""
    return {"started_at": time.time(), "eta": self.request.eta}
