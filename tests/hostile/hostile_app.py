"""The tasks the hostile-input tests run, on an app importable by path.

Worker subprocesses (``petiole worker -A hostile_app``) and processes-pool
children import ``app`` from here, with their broker and results from the
PETIOLE_* variables the test sets. Tests that run a worker in their own
process call :func:`register` on an app of their own, so both run the same tasks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from petiole import Petiole

# A blocked task gives up after this long, so a failed test never leaves a
# worker blocked for good.
BLOCK_LIMIT_S = 30.0


def register(app: Petiole) -> Petiole:
    """Define the hostile tests' tasks on ``app``; return it."""

    @app.task(name="hostile.echo")
    def echo(value: Any = None, *args: Any, **kwargs: Any) -> Any:
        return value

    @app.task(name="hostile.slow_echo")
    def slow_echo(value: Any, delay_s: float) -> Any:
        time.sleep(delay_s)
        return value

    @app.task(name="hostile.fail")
    def fail() -> None:
        raise ValueError("this task always fails")

    @app.task(name="hostile.record", bind=True)
    def record(self: Any, runs_path: str, block_path: str | None = None) -> str:
        """Append this task's id to ``runs_path`` as it starts (so a test counts
        every run), then wait until ``block_path`` exists, when given."""
        fd = os.open(runs_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # One small O_APPEND write lands whole, whoever else appends.
            os.write(fd, f"{self.request.id}\n".encode())
        finally:
            os.close(fd)
        if block_path is not None:
            deadline = time.monotonic() + BLOCK_LIMIT_S
            while not Path(block_path).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return str(self.request.id)

    return app


app = register(Petiole("hostile"))
