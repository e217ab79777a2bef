"""Redis-specific transport behaviour beyond the conformance suite."""

from __future__ import annotations

import dataclasses
import threading
import time

from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport


def test_publish_many_stores_every_message_in_order(transport: RedisTransport, queue: str) -> None:
    payloads = [f"m{i}".encode() for i in range(500)]

    assert transport.publish_many(queue, payloads, message_ids=[f"t{i}" for i in range(500)]) == 500

    got = transport.reserve([queue], max_messages=1000, wait_s=0, lease_s=30)
    assert [d.payload for d in got] == payloads
    assert [d.message_id for d in got] == [f"t{i}" for i in range(500)]


def test_expired_lease_is_recovered_by_another_connection(
    redis_server: RedisServer, transport: RedisTransport, queue: str
) -> None:
    crashed = RedisTransport(redis_server.url, {})
    transport.publish(queue, b"orphan")
    [first] = crashed.reserve([queue], max_messages=1, wait_s=0, lease_s=0.2)
    crashed.close()  # its worker died: nobody will ack or extend

    [again] = transport.reserve([queue], max_messages=1, wait_s=5, lease_s=30)

    assert again.payload == b"orphan"
    assert again.delivery_count == first.delivery_count + 1
    transport.ack(again)
    assert transport.size(queue) == 0


def test_waiting_reserve_wakes_for_a_delayed_message_published_meanwhile(
    transport: RedisTransport, queue: str
) -> None:
    publisher = threading.Timer(0.1, lambda: transport.publish(queue, b"soon", delay_s=0.3))
    start = time.monotonic()
    publisher.start()

    got = transport.reserve([queue], max_messages=1, wait_s=10, lease_s=30)

    elapsed = time.monotonic() - start
    assert [d.payload for d in got] == [b"soon"]
    assert 0.35 <= elapsed <= 1.0


def test_reserve_moves_a_large_backlog_of_due_messages_in_bounded_steps(
    transport: RedisTransport, queue: str
) -> None:
    transport.publish_many(queue, [b"x"] * 2500, delay_s=0.05)

    got = 0
    while got < 2500:
        batch = transport.reserve([queue], max_messages=2000, wait_s=5, lease_s=30)
        assert batch, f"only {got} of 2500 came back"
        got += len(batch)
    assert got == 2500


def test_ack_many_removes_every_leased_message_and_ignores_stale_receipts(
    transport: RedisTransport, queue: str
) -> None:
    transport.publish_many(queue, [f"m{i}".encode() for i in range(50)])
    held = transport.reserve([queue], max_messages=50, wait_s=0, lease_s=60)
    stale = dataclasses.replace(held[0], receipt=held[0].receipt.rsplit(":", 1)[0] + ":99")
    transport.ack_many([stale, *held[1:]])
    assert transport.size(queue) == 1
    transport.ack_many([held[0]])
    assert transport.size(queue) == 0
    transport.ack_many([])
