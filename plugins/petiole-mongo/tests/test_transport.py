"""MongoDB-specific transport behaviour beyond the conformance suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from petiole_mongo.testing import MongoServer
from petiole_mongo.transport import MongoTransport

from petiole.errors import TransportError
from petiole.testing import unique_name
from petiole.testing.servers import free_port


@pytest.fixture
def transport(mongo_server: MongoServer) -> Iterator[MongoTransport]:
    transport = MongoTransport(mongo_server.url, {})
    yield transport
    transport.close()


@pytest.fixture
def queue(transport: MongoTransport) -> Iterator[str]:
    name = unique_name()
    yield name
    transport.purge(name)
    transport.purge_dead_letters(name)


def test_indexes_are_created_on_first_use(mongo_server: MongoServer, queue: str) -> None:
    prefix = unique_name("idx").replace("-", "_")
    transport = MongoTransport(mongo_server.url, {"collection_prefix": prefix})
    try:
        with mongo_server.client() as client:
            assert prefix + "_messages" not in client.get_database().list_collection_names()
            transport.size(queue)
            messages = client.get_database()[prefix + "_messages"].index_information()
            dead = client.get_database()[prefix + "_dead_letters"].index_information()
    finally:
        transport.close()

    assert messages["by_order"]["key"] == [
        ("queue", 1),
        ("priority", -1),
        ("visible_at", 1),
        ("_id", 1),
    ]
    assert messages["by_due"]["key"] == [("queue", 1), ("visible_at", 1)]
    assert dead["by_queue"]["key"] == [("queue", 1), ("dead_at", 1), ("_id", 1)]


def test_requeue_interrupted_between_its_writes_republishes_nothing_twice(
    mongo_server: MongoServer, transport: MongoTransport, queue: str
) -> None:
    transport.publish(queue, b"poison")
    [delivery] = transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30)
    transport.dead_letter(delivery, reason="bad")
    [dead] = transport.dead_letters(queue)
    # The state a requeue leaves when it dies after its insert, before its
    # delete (possible without transactions): the message is live and dead.
    with mongo_server.client() as client:
        db = client.get_database()
        document = db[transport.dead_letters_name].find_one({"queue": queue})
        assert document is not None
        db[transport.messages_name].insert_one(
            {
                "_id": document["_id"],
                "queue": queue,
                "priority": 0,
                "visible_at": time.time(),
                "receipt": None,
                "delivery_count": 0,
                "message_id": "",
                "enqueued_at": time.time(),
                "payload": document["payload"],
            }
        )

    assert transport.requeue_dead_letters(queue, [dead.dead_letter_id]) == 1
    assert transport.size(queue) == 1
    assert transport.dead_letters(queue) == []


def test_publish_on_another_connection_wakes_a_waiting_reserve_by_change_stream(
    mongo_server: MongoServer, transport: MongoTransport, queue: str
) -> None:
    # A poll would look ~1.3 s and ~2.6 s into the wait; the publish is at 1.5 s.
    peer = MongoTransport(mongo_server.url, {})
    transport.reserve([queue], max_messages=1, wait_s=0.3, lease_s=30)  # opens the stream
    if not transport._feed.live:
        peer.close()
        pytest.skip("this server offers no change streams (a standalone mongod)")
    published_at: list[float] = []

    def publish() -> None:
        peer.publish(queue, b"pushed")
        published_at.append(time.monotonic())

    timer = threading.Timer(1.5, publish)
    timer.start()
    try:
        got = transport.reserve([queue], max_messages=1, wait_s=10, lease_s=30)
        returned_at = time.monotonic()
    finally:
        timer.join()
        peer.close()

    assert [d.payload for d in got] == [b"pushed"]
    assert returned_at - published_at[0] < 0.5


def test_without_change_streams_reserve_polls_every_poll_interval(
    mongo_server: MongoServer, queue: str
) -> None:
    polling = MongoTransport(mongo_server.url, {"change_streams": False, "poll_interval_ms": 100})
    peer = MongoTransport(mongo_server.url, {})
    timer = threading.Timer(1.0, lambda: peer.publish(queue, b"polled"))
    start = time.monotonic()
    timer.start()
    try:
        got = polling.reserve([queue], max_messages=1, wait_s=10, lease_s=30)
        elapsed = time.monotonic() - start
        assert not polling._feed.live
    finally:
        timer.join()
        polling.purge(queue)
        polling.close()
        peer.close()

    assert [d.payload for d in got] == [b"polled"]
    assert 1.0 <= elapsed < 1.5


def test_unreachable_server_is_a_transport_error_with_the_password_masked() -> None:
    url = f"mongodb://app:s3cret@127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=200"
    transport = MongoTransport(url, {})
    try:
        with pytest.raises(TransportError, match=r"mongodb://app:\*\*\*@127\.0\.0\.1") as info:
            transport.publish("q", b"lost?")
    finally:
        transport.close()

    assert "s3cret" not in str(info.value)
    assert "publish a message to queue 'q'" in str(info.value)


def test_operations_after_close_raise_a_transport_error(mongo_server: MongoServer) -> None:
    transport = MongoTransport(mongo_server.url, {})
    transport.close()

    with pytest.raises(TransportError, match="is closed"):
        transport.publish("q", b"late")


def test_dead_letters_move_and_come_back_without_transactions(
    mongo_server: MongoServer, queue: str
) -> None:
    # The path a standalone server takes: ordered writes instead of a transaction.
    transport = MongoTransport(mongo_server.url, {"transactions": False})
    try:
        transport.publish(queue, b"poison", priority=3, message_id="task-1")
        [delivery] = transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30)
        transport.dead_letter(delivery, reason="bad")
        assert transport.size(queue) == 0
        assert [d.reason for d in transport.dead_letters(queue)] == ["bad"]

        assert transport.requeue_dead_letters(queue) == 1
        [again] = transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30)
        assert (again.payload, again.message_id, again.delivery_count) == (b"poison", "task-1", 1)
        assert transport.dead_letters(queue) == []
        transport.ack(again)
    finally:
        transport.purge(queue)
        transport.close()
