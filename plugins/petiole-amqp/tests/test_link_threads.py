"""Publishing threads that do the I/O thread's work themselves while it waits (``_wire``):
nothing lost, nothing reordered, and the work really is done on the caller's thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from petiole_amqp.testing import RabbitServer
from petiole_amqp.transport import AmqpTransport, create_transport

from petiole.testing import unique_name, wait_until
from petiole.transport import Delivery


@pytest.fixture
def transport(rabbit_server: RabbitServer) -> Iterator[AmqpTransport]:
    transport = create_transport(rabbit_server.url, {})
    yield transport
    transport.close()


def test_an_idle_links_publish_is_written_by_the_publishing_thread(
    transport: AmqpTransport,
) -> None:
    queue = unique_name("petiole-threads")
    transport.publish(queue, b"warm-up: connects and declares")
    link = transport._started_link()
    session = link._session
    assert session is not None
    assert session.publisher is not None
    publisher: Any = session.publisher
    original = publisher.basic_publish
    writers: list[threading.Thread] = []

    def recorded(*args: Any, **kwargs: Any) -> None:
        writers.append(threading.current_thread())
        original(*args, **kwargs)

    publisher.basic_publish = recorded
    try:
        # Right after a confirm the I/O thread may still be busy (then it publishes,
        # as before); once it waits in epoll, the caller does.
        def published_here() -> bool:
            transport.publish(queue, b"m")
            return writers[-1] is threading.current_thread()

        assert wait_until(published_here, timeout_s=5)
    finally:
        del publisher.basic_publish
    assert transport.purge(queue) == 1 + len(writers)


def test_publishes_from_many_threads_all_arrive_in_each_threads_order(
    transport: AmqpTransport,
) -> None:
    """Eight threads publish at once (each publish waits for its confirm) while a
    consumer acknowledges from its own thread: callers and the I/O thread take
    turns on the connection, and every message arrives once, in its thread's order."""
    queue = unique_name("petiole-threads")
    transport.publish(queue, b"0:-1")  # declares the queue
    got: list[bytes] = []
    lock = threading.Lock()

    def on_delivery(delivery: Delivery) -> None:
        with lock:
            got.append(delivery.payload)
        threading.Thread(target=transport.ack, args=(delivery,)).start()

    consumer = transport.consume([queue], prefetch=64, lease_s=60, on_delivery=on_delivery)
    errors: list[BaseException] = []

    def publish(k: int) -> None:
        try:
            for i in range(150):
                transport.publish(queue, b"%d:%d" % (k, i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        assert wait_until(lambda: len(got) == 1 + 8 * 150, timeout_s=30)
    finally:
        consumer.close()
    by_thread: dict[int, list[int]] = {}
    for payload in got:
        k, i = map(int, payload.split(b":"))
        by_thread.setdefault(k, []).append(i)
    assert by_thread[0] == [-1, *range(150)]
    assert all(by_thread[k] == list(range(150)) for k in range(1, 8))
    assert wait_until(lambda: transport.size(queue) == 0, timeout_s=5)
