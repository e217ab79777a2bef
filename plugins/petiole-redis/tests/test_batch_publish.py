"""Publishing in batches on a real redis-server (``appendfsync always``): what a
block says is stored survives a SIGKILL of the server, and a block the server
dies under says how many of its messages were stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport

from petiole import Petiole
from petiole.errors import TransportError
from petiole.producer import SendManyError
from petiole.testing import unique_name
from petiole.transport import PublishesInBatches

ROUND = 500  # messages per pipelined round (transport._BATCH_MAX_MESSAGES)


@pytest.fixture
def own_transport(own_redis_server: RedisServer) -> Iterator[RedisTransport]:
    """A transport on a server of this test's own, giving up on an outage after 0.5 s."""
    transport = RedisTransport(own_redis_server.url, {"reconnect_timeout_s": 0.5})
    yield transport
    transport.close()


def test_the_transport_publishes_in_batches(transport: RedisTransport) -> None:
    assert isinstance(transport, PublishesInBatches)


def test_every_message_of_an_ended_block_survives_a_kill_of_the_server(
    own_redis_server: RedisServer, own_transport: RedisTransport
) -> None:
    queue = unique_name()
    with own_transport.batch():
        for i in range(2 * ROUND + 7):
            own_transport.publish(queue, b"m%d" % i)

    own_redis_server.restart()  # SIGKILL: only what was fsynced comes back

    assert own_transport.size(queue) == 2 * ROUND + 7


def test_a_full_round_is_sent_before_the_block_ends(
    transport: RedisTransport, queue: str, redis_server: RedisServer
) -> None:
    peer = RedisTransport(redis_server.url, {})
    try:
        with transport.batch():
            for i in range(ROUND + 3):
                transport.publish(queue, b"m%d" % i)
            # A block holds one round at most; the rest is sent at its end.
            assert peer.size(queue) == ROUND
        assert peer.size(queue) == ROUND + 3
    finally:
        peer.close()


def test_a_block_inside_a_block_is_sent_when_the_outer_one_ends(
    transport: RedisTransport, queue: str
) -> None:
    with transport.batch():
        transport.publish(queue, b"outer")
        with transport.batch():
            transport.publish(queue, b"inner")
        assert transport.size(queue) == 0
    assert transport.size(queue) == 2


def test_a_block_left_by_an_exception_still_sends_what_it_queued(
    transport: RedisTransport, queue: str
) -> None:
    def fail_inside_a_block() -> None:
        with transport.batch():
            transport.publish(queue, b"before the error")
            raise KeyError("the caller's own bug")

    with pytest.raises(KeyError):
        fail_inside_a_block()
    assert transport.size(queue) == 1


def test_a_block_the_server_dies_under_says_how_many_were_stored(
    own_redis_server: RedisServer, own_transport: RedisTransport
) -> None:
    queue = unique_name()

    def publish_while_the_server_dies() -> None:
        with own_transport.batch():
            for i in range(ROUND + 100):
                own_transport.publish(queue, b"m%d" % i)
            own_redis_server.kill()
            for i in range(100):
                own_transport.publish(queue, b"late-%d" % i)

    with pytest.raises(TransportError) as caught:
        publish_while_the_server_dies()

    message = str(caught.value)
    assert f"of the {ROUND + 200} messages published in this batch, {ROUND} are stored" in message
    assert "the last 200 may not be" in message
    assert "unreachable" in message
    own_redis_server.start()
    assert own_transport.size(queue) == ROUND


def test_delay_many_sends_in_pipelined_batches_in_order(redis_server: RedisServer) -> None:
    queue = unique_name()
    app = Petiole(
        "many", broker=redis_server.url, backend=redis_server.url, config_file="/dev/null"
    )

    @app.task(name="echo", queue=queue)
    def echo(value: int) -> int:
        return value

    try:
        results = echo.delay_many(((i,) for i in range(1234)), batch_size=ROUND)

        assert app.transport.size(queue) == 1234
        got = app.transport.reserve([queue], max_messages=2000, wait_s=1, lease_s=60)
        assert [d.message_id for d in got] == [r.id for r in results]
        app.transport.purge(queue)
    finally:
        app.close()


def test_delay_many_with_the_server_dying_mid_way_reports_the_batches_stored(
    own_redis_server: RedisServer,
) -> None:
    queue = unique_name()
    app = Petiole(
        "many",
        broker=own_redis_server.url,
        backend=own_redis_server.url,
        config_file="/dev/null",
        broker_options={"reconnect_timeout_s": 0.5},
    )

    @app.task(name="echo", queue=queue)
    def echo(value: int) -> int:
        return value

    def items() -> Iterator[tuple[int]]:
        for i in range(3 * ROUND):
            if i == ROUND + 10:  # while the second batch is read
                own_redis_server.kill()
            yield (i,)

    try:
        with pytest.raises(SendManyError) as caught:
            echo.delay_many(items(), batch_size=ROUND)

        error = caught.value
        assert len(error.sent) == ROUND
        assert len(error.unconfirmed) == ROUND
        assert f"Sent: items 0-{ROUND - 1}" in str(error)
        assert f"Not sent: every item from {2 * ROUND} on" in str(error)
        own_redis_server.start()
        assert app.transport.size(queue) == ROUND
        stored = app.transport.reserve([queue], max_messages=2 * ROUND, wait_s=1, lease_s=60)
        assert [d.message_id for d in stored] == [r.id for r in error.sent]
    finally:
        app.close()
