"""The eventlet pool in an eventlet-patched process: the green-pool suite (pool
conformance, tasks side by side, time limits, cancel) and eventlet's own patching.

Run only through test_patched_process.py; its name keeps the repository's pytest
run, which is never patched, from collecting it.
"""

from __future__ import annotations

import socket
import time

import eventlet
import eventlet.green.socket
from petiole_eventlet.pool import EventletPool

from petiole.testing.green_suite import GreenPoolSuite


class TestEventletPool(GreenPoolSuite):
    pool_class = EventletPool

    def test_the_process_runs_on_eventlets_socket_and_sleep(self) -> None:
        assert socket.socket is eventlet.green.socket.socket
        assert time.sleep is eventlet.sleep
