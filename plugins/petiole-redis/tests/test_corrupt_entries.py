"""A corrupt entry in Redis (edited by hand, left by a bug) costs only itself: it
goes to the queue's dead-letter store with a reason, and no script fails
halfway through (Redis would keep its partial writes and lose the messages it
had already moved)."""

from __future__ import annotations

import json
import logging

import pytest
import redis
from petiole_redis._keys import Keys, QueueKeys
from petiole_redis.transport import RedisTransport

META_FORMAT = '"<count>|<priority>|<message_id>"'


def keys_of(queue: str) -> QueueKeys:
    return Keys().queue(queue)


def ready_ids(client: redis.Redis, queue: str, priority: int = 0) -> list[str]:
    return [i.decode() for i in client.lrange(keys_of(queue).ready[priority], 0, -1)]


def publish(transport: RedisTransport, client: redis.Redis, queue: str, count: int) -> list[str]:
    """Publish ``count`` messages (payloads m0, m1, ...); return their Redis ids in order."""
    before = set(ready_ids(client, queue))
    for i in range(count):
        transport.publish(queue, f"m{i}".encode(), message_id=f"task-{i}")
    return [i for i in ready_ids(client, queue) if i not in before]


def buried_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "petiole_redis" and r.levelno == logging.ERROR and "corrupt entr" in r.message
    ]


def test_corrupt_meta_is_dead_lettered_and_the_other_messages_of_the_batch_are_leased(
    transport: RedisTransport,
    client: redis.Redis,
    queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="petiole_redis")
    ids = publish(transport, client, queue, 6)
    client.hset(keys_of(queue).meta, ids[2], "garbage")
    client.rpush(keys_of(queue).ready[0], "leftover")  # no entry at all: dropped, not dead

    got = transport.reserve([queue], max_messages=10, wait_s=0, lease_s=30)

    assert [d.payload for d in got] == [b"m0", b"m1", b"m3", b"m4", b"m5"]
    assert ready_ids(client, queue) == []
    assert client.zcard(keys_of(queue).leased) == 5
    [letter] = transport.dead_letters(queue)
    assert letter.dead_letter_id == ids[2]
    assert letter.payload == b"m2"
    assert letter.reason == f'corrupt entry: its metadata "garbage" is not {META_FORMAT}'
    assert transport.size(queue) == 5
    [line] = buried_lines(caplog)
    assert f"queue {queue!r}: moved 1 corrupt entry" in line
    assert ids[2] in line


def test_message_with_no_payload_is_dead_lettered_with_its_message_id(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    ids = publish(transport, client, queue, 3)
    client.hdel(keys_of(queue).msgs, ids[0])

    got = transport.reserve([queue], max_messages=10, wait_s=0, lease_s=30)

    assert [d.payload for d in got] == [b"m1", b"m2"]
    [letter] = transport.dead_letters(queue)
    assert letter.reason == "corrupt entry: its payload is missing"
    assert letter.payload == b""
    info = json.loads(client.hget(keys_of(queue).dead_info, ids[0]) or b"")
    assert info["message_id"] == "task-0"
    assert client.hget(keys_of(queue).meta, ids[0]) is None


def test_message_with_no_meta_is_dead_lettered_with_its_payload(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    ids = publish(transport, client, queue, 3)
    client.hdel(keys_of(queue).meta, ids[1])

    got = transport.reserve([queue], max_messages=10, wait_s=0, lease_s=30)

    assert [d.payload for d in got] == [b"m0", b"m2"]
    [letter] = transport.dead_letters(queue)
    assert (letter.reason, letter.payload) == ("corrupt entry: its metadata is missing", b"m1")
    assert letter.delivery_count == 0


def test_id_listed_twice_is_leased_once(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    [ident] = publish(transport, client, queue, 1)
    client.rpush(keys_of(queue).ready[0], ident)

    got = transport.reserve([queue], max_messages=10, wait_s=0, lease_s=30)

    assert [(d.payload, d.delivery_count) for d in got] == [(b"m0", 1)]
    assert ready_ids(client, queue) == []


def test_expired_lease_with_corrupt_meta_is_dead_lettered_and_the_other_leases_come_back(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    ids = publish(transport, client, queue, 3)
    transport.reserve([queue], max_messages=3, wait_s=0, lease_s=0.05)
    client.hset(keys_of(queue).meta, ids[1], "1|x|task-1")

    # Blocks until the leases run out, then sweeps them back and leases the good ones.
    again = transport.reserve([queue], max_messages=3, wait_s=3, lease_s=30)

    assert sorted((d.payload, d.delivery_count) for d in again) == [(b"m0", 2), (b"m2", 2)]
    [letter] = transport.dead_letters(queue)
    assert letter.dead_letter_id == ids[1]
    assert '"1|x|task-1"' in letter.reason
    assert transport.size(queue) == 2


def test_due_delayed_message_with_corrupt_meta_is_dead_lettered(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    transport.publish(queue, b"late-bad", delay_s=0.05)
    transport.publish(queue, b"late-good", delay_s=0.05)
    bad, good = (i.decode() for i in client.zrange(keys_of(queue).delayed, 0, -1))
    if client.hget(keys_of(queue).msgs, bad) != b"late-bad":
        bad, good = good, bad
    client.hset(keys_of(queue).meta, bad, "")

    got = transport.reserve([queue], max_messages=5, wait_s=3, lease_s=30)

    assert [d.payload for d in got] == [b"late-good"]
    [letter] = transport.dead_letters(queue)
    assert (letter.dead_letter_id, letter.payload) == (bad, b"late-bad")
    assert client.zcard(keys_of(queue).delayed) == 0


def test_requeue_nack_of_a_message_whose_meta_broke_while_leased_leaves_it_leased(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    [ident] = publish(transport, client, queue, 1)
    [delivery] = transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30)
    client.hset(keys_of(queue).meta, ident, "1|?|task-0")

    transport.nack(delivery)

    assert client.zscore(keys_of(queue).leased, ident) is not None
    assert ready_ids(client, queue) == []
    assert transport.size(queue) == 1


def test_dead_letter_of_a_message_with_broken_meta_and_no_payload_is_stored_whole(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    [ident] = publish(transport, client, queue, 1)
    [delivery] = transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30)
    client.hset(keys_of(queue).meta, ident, "1|x")
    client.hdel(keys_of(queue).msgs, ident)

    transport.dead_letter(delivery, reason="bad body")

    [letter] = transport.dead_letters(queue)
    assert (letter.reason, letter.payload, letter.delivery_count) == ("bad body", b"", 0)
    assert transport.size(queue) == 0
    assert client.zcard(keys_of(queue).leased) == 0


def test_dead_letter_with_unreadable_info_is_listed_and_requeued_at_priority_zero(
    transport: RedisTransport, client: redis.Redis, queue: str
) -> None:
    for ident in ("a", "b"):
        transport.publish(queue, ident.encode())
    for delivery in transport.reserve([queue], max_messages=2, wait_s=0, lease_s=30):
        transport.dead_letter(delivery, reason="failed")
    first = client.zrange(keys_of(queue).dead, 0, 0)[0]
    client.hset(keys_of(queue).dead_info, first, "{not json")

    letters = transport.dead_letters(queue)

    assert [x.reason for x in letters] == ["(its dead-letter info is unreadable)", "failed"]
    assert transport.requeue_dead_letters(queue) == 2
    again = transport.reserve([queue], max_messages=5, wait_s=0, lease_s=30)
    assert sorted(d.payload for d in again) == [b"a", b"b"]


def test_requeue_keeps_a_dead_letter_with_no_payload_and_requeues_the_rest(
    transport: RedisTransport,
    client: redis.Redis,
    queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="petiole_redis")
    for name in ("a", "b", "c"):
        transport.publish(queue, name.encode())
    for delivery in transport.reserve([queue], max_messages=3, wait_s=0, lease_s=30):
        transport.dead_letter(delivery, reason="failed")
    first = client.zrange(keys_of(queue).dead, 0, 0)[0]
    client.hdel(keys_of(queue).dead_msgs, first)

    assert transport.requeue_dead_letters(queue) == 2

    assert client.zrange(keys_of(queue).dead, 0, -1) == [first]
    assert transport.size(queue) == 2
    assert any("1 dead letter could not be requeued" in r.getMessage() for r in caplog.records)
