"""One real memcached for the whole test session (tests use unique task ids and
keys, so they share it); tests that kill or restart a server start their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from petiole_memcached.testing import MemcachedServer

from petiole.testing.servers import serve


@pytest.fixture(scope="session")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemcachedServer]:
    yield from serve(MemcachedServer(tmp_path_factory.mktemp("memcached")))


@pytest.fixture
def own_memcached_server(tmp_path: Path) -> Iterator[MemcachedServer]:
    """A server of this test's own, to kill and restart."""
    yield from serve(MemcachedServer(tmp_path))


@pytest.fixture(scope="session")
def second_memcached_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MemcachedServer]:
    yield from serve(MemcachedServer(tmp_path_factory.mktemp("memcached2")))
