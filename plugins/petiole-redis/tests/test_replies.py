"""The hot path's reply reader (petiole_redis._replies) against a real redis-server:
every reply shape the plugin meets, replies split over many socket reads or several
in one, and the errors the outage policy tells apart."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import redis
from petiole_redis._client import FastClient
from petiole_redis._replies import ReplyReader
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport
from redis.exceptions import NoScriptError, ResponseError

from petiole.testing import unique_name


@pytest.fixture
def fast(transport: RedisTransport) -> FastClient:
    return transport._conn.fast


@pytest.fixture
def key() -> str:
    return unique_name("petiole-test-replies")


class _Trickle:
    """A socket whose reads return at most ``size`` bytes: replies arrive in pieces."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size = data, size

    def recv(self, _limit: int) -> bytes:
        chunk, self.data = self.data[: self.size], self.data[self.size :]
        return chunk


def _reader_of(data: bytes, size: int) -> ReplyReader:
    return ReplyReader(_Trickle(data, size), ResponseError)  # type: ignore[arg-type]


def test_every_reply_shape_comes_back_as_redis_pys_parser_returns_it(
    fast: FastClient, client: redis.Redis, key: str
) -> None:
    assert fast.execute_command("SET", key, b"v\r\nwith CRLF") == b"OK"  # simple string
    assert fast.execute_command("GET", key) == b"v\r\nwith CRLF"  # bulk holding CRLF
    assert fast.execute_command("GET", key + ":missing") is None  # nil bulk
    assert fast.execute_command("STRLEN", key) == 12  # integer
    assert fast.execute_command("MGET", key, key + ":missing", key) == [
        b"v\r\nwith CRLF",
        None,
        b"v\r\nwith CRLF",
    ]
    assert fast.execute_command("LRANGE", key + ":missing", 0, -1) == []  # empty array
    assert fast.execute_command("BLPOP", key + ":list", "0.01") is None  # nil array
    nested = fast.execute_command("EVAL", "return {1, {'a', 2}, {}, 'b'}", 0)
    assert nested == [1, [b"a", 2], [], b"b"]
    client.delete(key)


def test_a_large_value_read_over_many_socket_reads_is_whole(
    fast: FastClient, client: redis.Redis, key: str
) -> None:
    value = bytes(range(256)) * 20_000  # 5 MB: far more than one read
    client.set(key, value)
    assert fast.execute_command("GET", key) == value
    assert fast.execute_command("MGET", key, key) == [value, value]
    client.delete(key)


def test_pipelined_replies_arriving_together_are_read_one_by_one(
    fast: FastClient, client: redis.Redis, key: str
) -> None:
    replies = fast.execute_pipeline([("INCR", key)] * 500 + [("GET", key)])
    assert replies == [*range(1, 501), b"500"]
    client.delete(key)


def test_error_replies_raise_redis_pys_types_and_stay_in_place_inside_a_pipeline(
    fast: FastClient, client: redis.Redis, key: str
) -> None:
    with pytest.raises(NoScriptError):
        fast.execute_command("EVALSHA", "0" * 40, 0)
    client.rpush(key, "x")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        fast.execute_command("GET", key)
    replies = fast.execute_pipeline([("GET", key), ("LLEN", key)])
    assert isinstance(replies[0], ResponseError)
    assert replies[1] == 1
    assert fast.execute_command("LLEN", key) == 1  # the connection is still in step
    client.delete(key)


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_replies_split_anywhere_across_reads_are_read_whole(size: int) -> None:
    data = b"*5\r\n:12\r\n$5\r\nhe\r\no\r\n$-1\r\n*2\r\n+OK\r\n-ERR bad\r\n$0\r\n\r\n$3\r\nend\r\n"
    reader = _reader_of(data, size)
    first = reader.read()
    assert first[:3] == [12, b"he\r\no", None]
    assert first[3][0] == b"OK"
    assert isinstance(first[3][1], ResponseError)
    assert first[4] == b""
    assert reader.read() == b"end"


def test_a_connection_the_server_closes_is_a_connection_error(
    own_redis_server: RedisServer,
) -> None:
    transport = RedisTransport(own_redis_server.url, {})
    try:
        fast = transport._conn.fast
        fast.execute_command("CLIENT", "SETNAME", "doomed")
        with own_redis_server.client() as admin:
            admin.client_kill_filter(_type="normal", skipme=True)
        with pytest.raises(redis.ConnectionError):
            fast.execute_command("PING")
    finally:
        transport.close()


def test_a_read_that_times_out_is_a_timeout_error() -> None:
    left, right = socket.socketpair()
    try:
        left.settimeout(0.01)
        with pytest.raises(redis.TimeoutError):
            ReplyReader(left, ResponseError).read()
    finally:
        left.close()
        right.close()


@pytest.fixture(autouse=True)
def _no_leftover(fast: FastClient) -> Iterator[None]:
    yield
    assert fast.execute_command("PING") == b"PONG"  # nothing unread left behind
