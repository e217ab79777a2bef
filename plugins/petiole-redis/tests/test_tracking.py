"""The tracked reads result waits stand on (petiole_redis._tracking), on a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_redis._tracking import EVERYTHING, TrackingClient
from petiole_redis.results import RedisBackend
from petiole_redis.testing import RedisServer

from petiole.testing import unique_name


@pytest.fixture
def tracked(redis_server: RedisServer) -> Iterator[TrackingClient]:
    backend = RedisBackend(redis_server.url, {})
    yield TrackingClient(backend._conn)
    backend.close()


def test_a_key_written_after_it_was_read_is_named(
    redis_server: RedisServer, tracked: TrackingClient
) -> None:
    key = unique_name("tracked").encode()
    assert tracked.read([key]) == [None]
    assert tracked.changed(0) is None  # nothing written yet
    with redis_server.client() as admin:
        admin.set(key, b"v")
    assert tracked.changed(30) == frozenset([key])
    assert tracked.read([key]) == [b"v"]
    assert tracked.changed(0) is None  # nothing changed since


def test_a_change_pushed_while_another_read_is_answered_is_not_lost(
    redis_server: RedisServer, tracked: TrackingClient
) -> None:
    """The server sends the name before the next reply on the same connection, and
    redis-py's parser reads past it to that reply: the name must be kept, or the
    waiter sleeps until its slice ends although its result is there."""
    first, second = (unique_name("tracked").encode() for _ in range(2))
    tracked.read([first, second])
    with redis_server.client() as admin:
        admin.set(first, b"v")  # its name is pushed ahead of the next reply
    assert tracked.read([second]) == [None]
    assert tracked.changed(30) == frozenset([first])


def test_a_new_connection_names_everything(
    redis_server: RedisServer, tracked: TrackingClient
) -> None:
    """The server forgets what a closed connection read: all must be read again."""
    tracked.read([unique_name("tracked").encode()])
    with redis_server.client() as admin:
        admin.client_kill_filter(_type="normal", skipme=True)
    # As waits call it: through the connector's retry policy, which reconnects.
    changed = tracked._connector.retrying("wait", lambda: tracked.changed(30))
    assert changed is EVERYTHING


def test_a_flush_names_everything(redis_server: RedisServer, tracked: TrackingClient) -> None:
    key = unique_name("tracked").encode()
    tracked.read([key])
    with redis_server.client() as admin:
        admin.flushdb()
    assert tracked.changed(30) is EVERYTHING
