"""The orphan check: a message stored in the msgs hash but in no ready list,
delayed set or leased set would never be delivered; the check puts it back."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis
from petiole_redis._keys import Keys, QueueKeys
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport


@pytest.fixture
def transport(redis_server: RedisServer) -> Iterator[RedisTransport]:
    transport = RedisTransport(redis_server.url, {"orphan_check_interval_s": 0})
    yield transport
    transport.close()


@pytest.fixture
def queue(queue: str, client: redis.Redis) -> Iterator[str]:
    """The conftest's queue, with the orphan check's cursor removed afterwards too."""
    yield queue
    client.delete(keys_of(queue).orphan_scan)


def keys_of(queue: str) -> QueueKeys:
    return Keys().queue(queue)


def orphan(client: redis.Redis, queue: str, ident: str, payload: bytes, meta: str) -> None:
    """Store a message the way publish does, but put its id in no list or set."""
    client.hset(keys_of(queue).msgs, ident, payload)
    client.hset(keys_of(queue).meta, ident, meta)


def orphan_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "orphaned message" in r.getMessage()]


def test_requeue_orphans_puts_an_orphan_back_in_its_priority_list_and_logs_its_id(
    transport: RedisTransport,
    client: redis.Redis,
    queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="petiole_redis")
    orphan(client, queue, "lost-1", b"payload", "2|7|task-1")

    assert transport.requeue_orphans(queue) == 1

    assert client.lrange(keys_of(queue).ready[7], 0, -1) == [b"lost-1"]
    [delivery] = transport.reserve([queue], max_messages=5, wait_s=0, lease_s=30)
    assert (delivery.payload, delivery.message_id, delivery.delivery_count) == (
        b"payload",
        "task-1",
        3,
    )
    [line] = orphan_lines(caplog)
    assert f"queue {queue!r}: requeued 1 orphaned message" in line
    assert "lost-1" in line


def test_requeue_orphans_leaves_ready_delayed_and_leased_messages_where_they_are(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    transport.publish(queue, b"leased")
    [held] = transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30)
    transport.publish(queue, b"ready", priority=3)
    transport.publish(queue, b"delayed", delay_s=60)

    assert transport.requeue_orphans(queue) == 0

    assert client.llen(keys_of(queue).ready[3]) == 1
    assert client.zcard(keys_of(queue).delayed) == 1
    assert client.zrange(keys_of(queue).leased, 0, -1) == [held.receipt.split(":")[0].encode()]
    assert transport.size(queue) == 3


def test_orphan_with_corrupt_meta_goes_to_the_dead_letter_store(
    transport: RedisTransport,
    client: redis.Redis,
    queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="petiole_redis")
    orphan(client, queue, "broken", b"body", "garbage")
    client.hset(keys_of(queue).msgs, "no-meta", b"body2")

    assert transport.requeue_orphans(queue) == 0

    letters = {x.dead_letter_id: x for x in transport.dead_letters(queue)}
    assert set(letters) == {"broken", "no-meta"}
    assert '"garbage"' in letters["broken"].reason
    assert letters["no-meta"].reason == "corrupt entry: its metadata is missing"
    assert transport.size(queue) == 0
    assert any("moved 2 corrupt entries" in r.getMessage() for r in caplog.records)


def test_orphans_are_not_decided_while_the_ready_lists_are_longer_than_the_limit(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    # Listed ids only (no entries): they stand for a backlog of 10,001 messages.
    client.rpush(keys_of(queue).ready[0], *[f"backlog-{i}" for i in range(10_001)])
    orphan(client, queue, "lost", b"payload", "0|0|")

    assert transport.requeue_orphans(queue) == 0

    client.delete(keys_of(queue).ready[0])
    assert transport.requeue_orphans(queue) == 1


def test_reserve_runs_the_periodic_check_and_delivers_the_orphan(
    redis_server: RedisServer, client: redis.Redis, queue: str
) -> None:
    orphan(client, queue, "lost-2", b"payload", "0|0|task-2")
    transport = RedisTransport(redis_server.url, {"orphan_check_interval_s": 60})
    try:
        [delivery] = transport.reserve([queue], max_messages=5, wait_s=1, lease_s=30)
    finally:
        transport.close()

    assert (delivery.payload, delivery.message_id) == (b"payload", "task-2")


def test_periodic_check_is_shared_so_another_transport_waits_for_the_next_pass(
    redis_server: RedisServer, client: redis.Redis, queue: str
) -> None:
    first = RedisTransport(redis_server.url, {"orphan_check_interval_s": 60})
    second = RedisTransport(redis_server.url, {"orphan_check_interval_s": 60})
    try:
        assert first.reserve([queue], max_messages=1, wait_s=0, lease_s=30) == []
        state = client.hgetall(keys_of(queue).orphan_scan)
        assert state[b"cursor"] == b"0"  # the pass is over: the queue is small
        due_ms = int(state[b"due"])
        orphan(client, queue, "lost-3", b"payload", "0|0|")

        assert second.reserve([queue], max_messages=1, wait_s=0, lease_s=30) == []

        assert int(client.hget(keys_of(queue).orphan_scan, "due") or 0) == due_ms
        assert client.llen(keys_of(queue).ready[0]) == 0  # found by the next pass only
    finally:
        first.close()
        second.close()


def test_an_interval_of_zero_turns_the_periodic_check_off(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    orphan(client, queue, "lost-4", b"payload", "0|0|")

    assert transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30) == []

    assert client.exists(keys_of(queue).orphan_scan) == 0
