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
