"""`python -m petiole_gevent worker -c 200` processes against a real redis-server
(broker and results), with this test process as the producer: the green-worker suite."""

from __future__ import annotations

import pytest

from petiole.testing.green_suite import GreenWorkerSuite

pytest.importorskip("petiole_redis", reason="petiole-redis is not installed (the [test] extra)")

from petiole_redis.testing import RedisServer

pytestmark = pytest.mark.slow


class TestGeventWorker(GreenWorkerSuite):
    command_module = "petiole_gevent"
    pool_name = "gevent"
    patched_socket_module = "gevent."
    broker_server = RedisServer
