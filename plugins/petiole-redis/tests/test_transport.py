"""Redis-specific transport behaviour beyond the conformance suite."""

from __future__ import annotations

import dataclasses
import threading
import time

import redis
from petiole_redis._keys import Keys
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport

from petiole.testing.in_thread import InThread


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


def test_publish_to_a_list_already_holding_ids_pushes_no_wake_token(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    wake = Keys().queue(queue).wake
    transport.publish(queue, b"first")
    assert client.llen(wake) == 1
    client.delete(wake)  # a waiting worker took it

    transport.publish(queue, b"second")

    assert client.llen(wake) == 0


def test_reserve_that_leaves_messages_behind_pushes_a_wake_token(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    wake = Keys().queue(queue).wake
    transport.publish_many(queue, [b"a", b"b"])
    client.delete(wake)  # the worker that reserves next took it

    [got] = transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30)

    assert got.payload == b"a"
    assert client.llen(wake) == 1  # so another waiting worker wakes for b"b"


def test_reserve_that_drains_its_queue_pushes_no_wake_token(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    wake = Keys().queue(queue).wake
    transport.publish_many(queue, [b"a", b"b"])
    client.delete(wake)

    assert len(transport.reserve([queue], max_messages=2, wait_s=0, lease_s=30)) == 2

    assert client.llen(wake) == 0


def test_idle_reserve_that_blocks_at_once_is_woken_by_a_publish(
    redis_server: RedisServer, transport: RedisTransport, queue: str
) -> None:
    assert transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30) == []  # drained
    waiting = InThread(lambda: transport.reserve([queue], max_messages=1, wait_s=30, lease_s=30))
    publisher = RedisTransport(redis_server.url, {})
    try:
        publisher.publish(queue, b"wake up")
        [got] = waiting.result(timeout_s=30)
    finally:
        publisher.close()

    assert got.payload == b"wake up"


def test_ack_many_of_leases_swept_back_to_the_queue_deletes_nothing(
    transport: RedisTransport, queue: str
) -> None:
    transport.publish_many(queue, [b"one", b"two", b"three"])
    expired = transport.reserve([queue], max_messages=3, wait_s=0, lease_s=0.05)
    [again] = transport.reserve([queue], max_messages=1, wait_s=5, lease_s=30)  # sweeps all back

    transport.ack_many(expired)  # stale: one re-leased with a new count, two queued again
    transport.ack_many(expired[2:])  # a single stale receipt takes the one-receipt path

    assert transport.size(queue) == 3
    assert again.delivery_count == 2
    assert len(transport.reserve([queue], max_messages=3, wait_s=0, lease_s=30)) == 2


def test_ack_many_acknowledges_messages_of_several_queues(
    transport: RedisTransport, queue: str
) -> None:
    other = f"{queue}-other"
    try:
        transport.publish(queue, b"here")
        transport.publish(other, b"there")
        held = transport.reserve([queue, other], max_messages=2, wait_s=0, lease_s=30)
        assert {d.queue for d in held} == {queue, other}

        transport.ack_many(held)

        assert transport.size(queue) == transport.size(other) == 0
    finally:
        transport.purge(other)
