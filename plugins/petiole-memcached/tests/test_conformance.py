"""The result backend and coordination conformance suites against a real memcached
started by the tests, on one server and with keys spread over two."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_memcached.results import MemcachedBackend, create_backend
from petiole_memcached.testing import MemcachedServer

from petiole.backend import Coordination, ResultBackend
from petiole.testing import CoordinationSuite, ResultBackendSuite


class OneServer:
    @pytest.fixture
    def url(self, memcached_server: MemcachedServer) -> str:
        return memcached_server.url


class TwoServers:
    """The same contract with keys spread over two servers."""

    @pytest.fixture
    def url(
        self, memcached_server: MemcachedServer, second_memcached_server: MemcachedServer
    ) -> str:
        return f"memcached://{memcached_server.address},{second_memcached_server.address}"


class MemcachedBackendSuite(ResultBackendSuite):
    # memcached's clock ticks in whole seconds and the plugin adds one so nothing
    # expires early: a 1 s ttl ends between 1 and 2 s after the store.
    ttl_precision_s = 2.0
    # wait polls, backing off to wait_poll_max_s (0.1 s here).
    wait_precision_s = 0.5
    timestamp_precision_s = 0.0

    @pytest.fixture
    def backend(self, url: str) -> Iterator[ResultBackend]:
        backend = create_backend(url, {"wait_poll_max_s": 0.1})
        yield backend
        backend.close()


class MemcachedCoordinationSuite(CoordinationSuite):
    # Whole-second expiry, never early: see MemcachedBackendSuite.
    ttl_precision_s = 2.0

    @pytest.fixture
    def coordination(self, url: str) -> Iterator[Coordination]:
        store = MemcachedBackend(url, {})
        yield store
        store.close()

    @pytest.fixture
    def peer_coordination(self, url: str) -> Iterator[Coordination]:
        store = MemcachedBackend(url, {})
        yield store
        store.close()


class TestMemcachedBackend(OneServer, MemcachedBackendSuite):
    pass


class TestMemcachedBackendOnTwoServers(TwoServers, MemcachedBackendSuite):
    pass


class TestMemcachedCoordination(OneServer, MemcachedCoordinationSuite):
    pass


class TestMemcachedCoordinationOnTwoServers(TwoServers, MemcachedCoordinationSuite):
    pass
