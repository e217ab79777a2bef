"""The app the end-to-end test runs in a `python -m petiole_gevent worker` process.

Its broker and results come from PETIOLE_* environment variables set by the test.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from petiole import Petiole

app = Petiole("gevent-e2e")


@app.task(name="gevent_e2e.sleep")
def sleep(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x


@app.task(name="gevent_e2e.socket_class")
def socket_class() -> str:
    """Where this worker's ``socket.socket`` comes from (gevent's, once patched)."""
    return f"{socket.socket.__module__}.{socket.socket.__qualname__}"


@app.task(name="gevent_e2e.stall_first_delivery", bind=True)
def stall_first_delivery(self: Any) -> int:
    """Runs for a minute on its first delivery (to be cut short); returns at once after."""
    if self.request.delivery_count == 1:
        time.sleep(60)
    return int(self.request.delivery_count)
