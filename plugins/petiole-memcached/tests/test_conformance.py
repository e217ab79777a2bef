"""The result backend and coordination conformance suites against a real memcached
started by the tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_memcached.results import MemcachedBackend, create_backend
from petiole_memcached.testing import MemcachedServer

from petiole.backend import Coordination, ResultBackend
from petiole.testing import CoordinationSuite, ResultBackendSuite


class TestMemcachedBackend(ResultBackendSuite):
    # memcached's clock ticks in whole seconds and the plugin adds one so nothing
    # expires early: a 1 s ttl ends between 1 and 2 s after the store.
    ttl_precision_s = 2.0
    # wait polls, backing off to wait_poll_max_s (0.1 s here).
    wait_precision_s = 0.5
    timestamp_precision_s = 0.0

    @pytest.fixture
    def backend(self, memcached_server: MemcachedServer) -> Iterator[ResultBackend]:
        backend = create_backend(memcached_server.url, {"wait_poll_max_s": 0.1})
        yield backend
        backend.close()


class TestMemcachedBackendOnTwoServers(ResultBackendSuite):
    """The same contract with keys spread over two servers."""

    ttl_precision_s = 2.0
    wait_precision_s = 0.5
    timestamp_precision_s = 0.0

    @pytest.fixture
    def backend(
        self, memcached_server: MemcachedServer, second_memcached_server: MemcachedServer
    ) -> Iterator[ResultBackend]:
        url = f"memcached://{memcached_server.address},{second_memcached_server.address}"
        backend = create_backend(url, {"wait_poll_max_s": 0.1})
        yield backend
        backend.close()


class TestMemcachedCoordination(CoordinationSuite):
    # Whole-second expiry, never early: see TestMemcachedBackend.
    ttl_precision_s = 2.0

    @pytest.fixture
    def coordination(self, memcached_server: MemcachedServer) -> Iterator[Coordination]:
        store = MemcachedBackend(memcached_server.url, {})
        yield store
        store.close()

    @pytest.fixture
    def peer_coordination(self, memcached_server: MemcachedServer) -> Iterator[Coordination]:
        store = MemcachedBackend(memcached_server.url, {})
        yield store
        store.close()


class TestMemcachedCoordinationOnTwoServers(CoordinationSuite):
    """The same contract with keys spread over two servers."""

    ttl_precision_s = 2.0

    @pytest.fixture
    def coordination(
        self, memcached_server: MemcachedServer, second_memcached_server: MemcachedServer
    ) -> Iterator[Coordination]:
        url = f"memcached://{memcached_server.address},{second_memcached_server.address}"
        store = MemcachedBackend(url, {})
        yield store
        store.close()

    @pytest.fixture
    def peer_coordination(
        self, memcached_server: MemcachedServer, second_memcached_server: MemcachedServer
    ) -> Iterator[Coordination]:
        url = f"memcached://{memcached_server.address},{second_memcached_server.address}"
        store = MemcachedBackend(url, {})
        yield store
        store.close()
