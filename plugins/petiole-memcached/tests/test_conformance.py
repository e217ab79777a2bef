"""The result backend conformance suite against a real memcached started by the tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_memcached.results import create_backend
from petiole_memcached.testing import MemcachedServer

from petiole.backend import ResultBackend
from petiole.testing import ResultBackendSuite


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
