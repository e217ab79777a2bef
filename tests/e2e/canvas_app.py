"""Tasks for the canvas end-to-end tests. Broker and results come from PETIOLE_* variables."""

from __future__ import annotations

import os
import time

from petiole import Petiole

app = Petiole("canvas")


@app.task(name="canvas.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="canvas.slow_square")
def slow_square(x: int, delay_s: float) -> int:
    time.sleep(delay_s)
    return x * x


@app.task(name="canvas.logged_sum")
def logged_sum(values: list[int], log_path: str) -> int:
    """The chord callback: appends one line per execution, so a test can count firings."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {len(values)}\n".encode())
    finally:
        os.close(fd)
    return sum(values)
