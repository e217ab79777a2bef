"""The conformance suites against a real redis-server started by the tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_redis.results import create_backend
from petiole_redis.testing import RedisServer
from petiole_redis.transport import create_transport

from petiole.backend import ResultBackend
from petiole.testing import ResultBackendSuite, TransportSuite
from petiole.transport import Transport


class TestRedisTransport(TransportSuite):
    # Redis's timers are milliseconds: tight slack.
    delay_precision_s = 0.25

    @pytest.fixture
    def transport(self, redis_server: RedisServer) -> Iterator[Transport]:
        transport = create_transport(redis_server.url, {})
        yield transport
        transport.close()

    @pytest.fixture
    def peer_transport(self, redis_server: RedisServer) -> Iterator[Transport]:
        transport = create_transport(redis_server.url, {})
        yield transport
        transport.close()


class TestRedisBackend(ResultBackendSuite):
    wait_precision_s = 0.25
    timestamp_precision_s = 0.0
    ttl_precision_s = 0.25

    @pytest.fixture
    def backend(self, redis_server: RedisServer) -> Iterator[ResultBackend]:
        backend = create_backend(redis_server.url, {})
        yield backend
        backend.close()
