"""One real redis-server for the whole test session (tests use unique queue and
key names, so they share it); tests that restart a server start their own. A
transport, a plain client and a fresh queue on it for the tests that need them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport

from petiole.testing import unique_name
from petiole.testing.servers import serve


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from serve(RedisServer(tmp_path_factory.mktemp("redis")))


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, to kill and restart."""
    yield from serve(RedisServer(tmp_path))


@pytest.fixture
def transport(redis_server: RedisServer) -> Iterator[RedisTransport]:
    transport = RedisTransport(redis_server.url, {})
    yield transport
    transport.close()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client, to look at (or break) what the plugin stored."""
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def queue(transport: RedisTransport) -> Iterator[str]:
    """A queue name no other test uses; purged, dead letters too, afterwards."""
    name = unique_name()
    yield name
    transport.purge(name)
    transport.purge_dead_letters(name)
