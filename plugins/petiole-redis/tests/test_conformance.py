"""The conformance suites against a real redis-server started by the tests (the
broker in its list layout: test_streams.py runs them on the streams layout, the
default), and what the broadcast does beyond its suite (pub/sub on the server,
outages)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_redis.results import RedisBackend, create_backend
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport, create_transport

from petiole.backend import Coordination, ResultBackend
from petiole.testing import (
    BroadcastSuite,
    CoordinationSuite,
    ResultBackendSuite,
    TransportSuite,
    unique_name,
    wait_until,
)
from petiole.testing.broadcast_suite import Inbox
from petiole.transport import Transport


class RedisConnections:
    """Two transports on the session's server: the suite's own and a peer."""

    @pytest.fixture
    def transport(self, redis_server: RedisServer) -> Iterator[Transport]:
        transport = create_transport(redis_server.url, {"layout": "lists"})
        yield transport
        transport.close()

    @pytest.fixture
    def peer_transport(self, redis_server: RedisServer) -> Iterator[Transport]:
        transport = create_transport(redis_server.url, {"layout": "lists"})
        yield transport
        transport.close()


class TestRedisTransport(RedisConnections, TransportSuite):
    # Redis's timers are milliseconds, but the suite's default slack (0.5 s) is
    # about the test machine too: 0.25 s failed once when CI ran suites side by
    # side on two cores (a delayed message reserved 1.297 s after a 1 s delay).
    pass


class TestRedisBroadcast(RedisConnections, BroadcastSuite):
    def test_broadcast_returns_the_servers_count_of_subscribers_until_closed(
        self, redis_server: RedisServer, transport: RedisTransport
    ) -> None:
        name = unique_name("petiole-test")
        subscription = transport.subscribe([name], Inbox())
        channel = transport.keys.broadcast_channel(name)

        def subscribers() -> int:
            return int(admin.pubsub_numsub(channel)[0][1])

        with redis_server.client() as admin:
            assert subscribers() == 1  # on the server when subscribe returned
            assert transport.broadcast(name, b"counted") == 1
            subscription.close()
            # The server notices the closed connection on its own time.
            assert wait_until(lambda: subscribers() == 0, timeout_s=10)
            assert transport.broadcast(name, b"nobody") == 0

    def test_subscription_subscribes_again_after_the_server_restarts(
        self, own_redis_server: RedisServer
    ) -> None:
        transport = RedisTransport(own_redis_server.url, {})
        inbox = Inbox()
        transport.subscribe(["control"], inbox)
        try:
            transport.broadcast("control", b"before")
            assert inbox.wait_for(1, timeout_s=10) == [("control", b"before")]

            own_redis_server.restart()
            # At most once: what is sent before it is back is lost, so probe until it is.
            assert wait_until(lambda: transport.broadcast("control", b"probe") == 1, timeout_s=20)
            transport.broadcast("control", b"after")

            assert wait_until(lambda: ("control", b"after") in inbox.received, timeout_s=10)
            assert inbox.received.count(("control", b"before")) == 1
        finally:
            transport.close()


class TestRedisBackend(ResultBackendSuite):
    # Slack of 0.5 s, not Redis's milliseconds: it is about the busy CI machine.
    wait_precision_s = 0.5
    timestamp_precision_s = 0.0
    ttl_precision_s = 0.5

    @pytest.fixture
    def backend(self, redis_server: RedisServer) -> Iterator[ResultBackend]:
        backend = create_backend(redis_server.url, {})
        yield backend
        backend.close()


class TestRedisCoordination(CoordinationSuite):
    ttl_precision_s = 0.5

    @pytest.fixture
    def coordination(self, redis_server: RedisServer) -> Iterator[Coordination]:
        store = RedisBackend(redis_server.url, {})
        yield store
        store.close()

    @pytest.fixture
    def peer_coordination(self, redis_server: RedisServer) -> Iterator[Coordination]:
        store = RedisBackend(redis_server.url, {})
        yield store
        store.close()
