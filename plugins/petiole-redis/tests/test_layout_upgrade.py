"""Upgrading from the list layout (the default before the streams one) loses nothing:
a streams worker moves the messages the list layout's keys hold of a queue into
its streams, and leaves those a list-layout worker holds a live lease on to it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis
from petiole_redis import streams as streams_module
from petiole_redis._keys import Keys
from petiole_redis.streams import StreamsTransport, _check_version
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport

from petiole.errors import TransportError
from petiole.testing import wait_until
from petiole.transport import Delivery


@pytest.fixture
def lists(redis_server: RedisServer) -> Iterator[RedisTransport]:
    transport = RedisTransport(redis_server.url, {})
    yield transport
    transport.close()


@pytest.fixture
def streams(redis_server: RedisServer) -> Iterator[StreamsTransport]:
    transport = StreamsTransport(redis_server.url, {})
    yield transport
    transport.close()


def _server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def _reserve_until(
    transport: StreamsTransport, queue: str, count: int, *, timeout_s: float = 10
) -> list[Delivery]:
    got: list[Delivery] = []

    def all_in() -> bool:
        got.extend(transport.reserve([queue], max_messages=10, wait_s=0.05, lease_s=60))
        return len(got) >= count

    assert wait_until(all_in, timeout_s=timeout_s), [d.payload for d in got]
    return got


def test_a_streams_worker_takes_over_the_list_layouts_messages_and_leaves_live_leases(
    lists: RedisTransport,
    streams: StreamsTransport,
    client: redis.Redis,
    queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="petiole_redis")
    lists.publish(queue, b"held")
    [held] = lists.reserve([queue], max_messages=1, wait_s=0, lease_s=60)
    lists.publish(queue, b"expired")
    [expired] = lists.reserve([queue], max_messages=1, wait_s=0, lease_s=0.001)
    lists.publish(queue, b"ready", message_id="task-1")
    lists.publish(queue, b"urgent", priority=5)
    lists.publish(queue, b"later", delay_s=0.5)
    lists.publish(queue, b"corrupt", message_id="to-corrupt")
    keys = Keys("petiole").queue(queue)
    [corrupt_id] = [i for i, m in client.hgetall(keys.meta).items() if m.endswith(b"|to-corrupt")]
    client.hset(keys.meta, corrupt_id, "garbage")
    first_lease_end = client.zrange(keys.leased, 0, 0, withscores=True)[0][1]
    assert wait_until(lambda: _server_ms(client) > first_lease_end, timeout_s=5)
    assert streams.size(queue) == 6  # what the list layout's keys hold counts

    got = _reserve_until(streams, queue, 4)

    by_payload = {d.payload: d for d in got}
    assert sorted(by_payload) == [b"expired", b"later", b"ready", b"urgent"]
    assert by_payload[b"expired"].delivery_count == 2  # its first delivery counts
    assert by_payload[b"ready"].delivery_count == 1
    assert by_payload[b"ready"].message_id == "task-1"
    [letter] = streams.dead_letters(queue)
    assert letter.payload == b"corrupt"
    assert "garbage" in letter.reason
    [line] = [r.getMessage() for r in caplog.records if "moved" in r.getMessage()]
    assert f"queue {queue!r}: moved 4 message(s) from the list layout's keys" in line
    assert "1 corrupt one(s) went to the dead letters" in line
    assert "1 still leased to list-layout workers" in line
    # The list-layout worker that holds its lease still acks it there.
    lists.ack(held)
    lists.ack(expired)  # stale: the streams worker has it now
    streams.ack_many(got)
    assert streams.size(queue) == 0


def test_messages_a_list_layout_producer_sends_later_are_taken_too(
    lists: RedisTransport,
    streams: StreamsTransport,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streams_module, "_ADOPT_INTERVAL_S", 0.0)  # look at every reserve
    assert streams.reserve([queue], max_messages=1, wait_s=0, lease_s=60) == []

    lists.publish(queue, b"from a producer not yet upgraded")

    [got] = _reserve_until(streams, queue, 1)
    assert got.payload == b"from a producer not yet upgraded"
    streams.ack(got)


def test_purge_deletes_the_list_layouts_messages_too(
    lists: RedisTransport, streams: StreamsTransport, queue: str
) -> None:
    lists.publish(queue, b"old")
    streams.publish(queue, b"new")
    assert streams.size(queue) == 2

    assert streams.purge(queue) == 2

    assert streams.size(queue) == 0
    assert lists.size(queue) == 0


def test_a_server_older_than_6_2_is_refused_with_what_to_do() -> None:
    # No such server is installed here: the check reads INFO's text.
    with pytest.raises(TransportError) as info:
        _check_version("redis://127.0.0.1:6379/0", b"# Server\r\nredis_version:6.0.16\r\n")
    assert "needs Redis 6.2 or later, and this server is 6.0" in str(info.value)
    assert 'layout = "lists"' in str(info.value)
    _check_version("redis://127.0.0.1:6379/0", b"# Server\r\nredis_version:7.0.15\r\n")
    _check_version("redis://127.0.0.1:6379/0", b"# Server\r\nredis_version:10.0.0\r\n")
