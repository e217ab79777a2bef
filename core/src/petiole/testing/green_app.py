"""Tasks for the green-pool suites (:mod:`petiole.testing.green_suite`).

Importable by path (``-A petiole.testing.green_app``), so a worker process can
run them; its broker and results come from ``PETIOLE_*`` environment variables
or :meth:`Petiole.configure`.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from petiole import Petiole
from petiole.errors import SoftTimeLimitExceeded

app = Petiole("green-tests")


@app.task(name="green_tests.sleep")
def sleep(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x


@app.task(name="green_tests.wait_on_socket")
def wait_on_socket(seconds: float) -> str:
    """Wait for data that never comes, as a slow server would keep a task waiting."""
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(seconds)
        try:
            left.recv(1)
        except TimeoutError:
            return "timed out"
    return "data"


@app.task(name="green_tests.clean_up_on_soft_limit")
def clean_up_on_soft_limit(seconds: float) -> str:
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "finished"


@app.task(name="green_tests.ignore_soft_limit")
def ignore_soft_limit(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(SoftTimeLimitExceeded):
            time.sleep(0.02)
    return "finished"


@app.task(name="green_tests.socket_class")
def socket_class() -> str:
    """Where this worker's ``socket.socket`` comes from (the library's, once patched)."""
    return f"{socket.socket.__module__}.{socket.socket.__qualname__}"


@app.task(name="green_tests.stall_first_delivery", bind=True)
def stall_first_delivery(self: Any) -> int:
    """Runs for a minute on its first delivery (to be cut short); returns at once after."""
    if self.request.delivery_count == 1:
        time.sleep(60)
    return int(self.request.delivery_count)
