"""The gevent pool in a gevent-patched process: the green-pool suite (pool
conformance, tasks side by side, time limits, cancel) and gevent's own patching.

Run only through test_patched_process.py; its name keeps the repository's pytest
run, which is never patched, from collecting it.
"""

from __future__ import annotations

import socket
import time

import gevent
import gevent.socket
from petiole_gevent.pool import GeventPool

from petiole.testing.green_suite import GreenPoolSuite


class TestGeventPool(GreenPoolSuite):
    pool_class = GeventPool

    def test_the_process_runs_on_gevents_socket_and_sleep(self) -> None:
        assert socket.socket is gevent.socket.socket
        assert time.sleep is gevent.sleep
