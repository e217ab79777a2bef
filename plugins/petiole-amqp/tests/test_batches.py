"""Publishing in batches on a real node: many messages in flight, confirmed together."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import pika
import pytest
from petiole_amqp.testing import RabbitServer
from petiole_amqp.transport import AmqpTransport, create_transport

from petiole import Petiole, group
from petiole.testing import unique_name
from petiole.testing.in_thread import start_worker
from petiole.transport import PublishesInBatches

COUNT = 2000


@pytest.fixture
def transport(rabbit_server: RabbitServer) -> Iterator[AmqpTransport]:
    transport = create_transport(rabbit_server.url, {})
    yield transport
    transport.close()


def test_every_message_of_a_batch_is_in_the_queue_when_the_block_ends(
    transport: AmqpTransport,
) -> None:
    assert isinstance(transport, PublishesInBatches)
    queue = unique_name("petiole-batch")
    transport.publish(queue, b"warm-up: declares the queue")
    started = time.perf_counter()
    with transport.batch():
        for i in range(COUNT):
            transport.publish(queue, b"m%d" % i, message_id=f"t{i}")
    elapsed = time.perf_counter() - started
    print(f"\n{COUNT} persistent messages in one batch: {COUNT / elapsed:,.0f}/s confirmed")

    assert transport.size(queue) == COUNT + 1
    assert transport.purge(queue) == COUNT + 1


def test_delayed_messages_in_a_batch_go_through_the_delay_levels(
    transport: AmqpTransport,
) -> None:
    queue = unique_name("petiole-batch")
    with transport.batch():
        transport.publish(queue, b"later", delay_s=3600)
        transport.publish(queue, b"now")
    assert transport.size(queue) == 2
    got = transport.reserve([queue], max_messages=5, wait_s=1, lease_s=30)
    assert [d.payload for d in got] == [b"now"]
    transport.ack(got[0])
    assert transport.purge(queue) == 1


def test_a_batch_inside_a_batch_joins_it(transport: AmqpTransport) -> None:
    """A group of groups: the inner block adds to the outer one, whose end waits."""
    queue = unique_name("petiole-batch")
    with transport.batch():
        transport.publish(queue, b"outer")
        with transport.batch():
            transport.publish(queue, b"inner")
    assert transport.size(queue) == 2
    assert transport.purge(queue) == 2


def test_a_group_is_sent_in_one_batch_and_its_results_come_back(
    rabbit_server: RabbitServer, tmp_path: object
) -> None:
    app = Petiole(
        "batches", broker=rabbit_server.url, backend="memory://batches", config_file="/dev/null"
    )

    @app.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    try:
        with start_worker(app):
            result = group(double.s(i) for i in range(200)).apply_async()
            assert result.get(timeout=30) == [2 * i for i in range(200)]
    finally:
        app.close()


def test_the_frames_of_one_drain_reach_the_socket_in_one_write(transport: AmqpTransport) -> None:
    """pika writes every frame with a send() of its own (three per message); the link
    holds what the I/O thread writes while it drains its queued work and writes it
    in one go, so a batch costs one system call, not three per message."""
    queue = unique_name("petiole-batch")
    transport.publish(queue, b"warm-up: declares the queue")
    link = transport._started_link()
    session = link._session
    assert session is not None
    connection = session.connection
    writes: list[bytes] = []
    emit = connection._emit

    def counted(data: bytes) -> None:
        writes.append(data)
        emit(data)

    futures: list[Future[None]] = []
    queued = threading.Event()

    def publish_fifty() -> None:  # on the I/O thread: the publishes join this drain
        properties = pika.BasicProperties(delivery_mode=2)
        futures.extend(link.publish("", queue, b"body-%02d" % i, properties) for i in range(50))
        queued.set()

    connection._emit = counted  # type: ignore[method-assign]
    try:
        link.submit(publish_fifty)
        assert queued.wait(10)
        for future in futures:
            future.result(10)
    finally:
        del connection._emit  # the class's method again
    assert len(writes) == 1
    assert all(b"body-%02d" % i in writes[0] for i in range(50))
    assert transport.purge(queue) == 51
