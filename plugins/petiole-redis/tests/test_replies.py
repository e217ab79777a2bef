"""The plugin's reply reader (petiole_redis._replies) against a real redis-server:
every reply shape the plugin meets (RESP2 and RESP3), replies split over many socket
reads or several in one, pushes between replies, and the errors the outage policy
tells apart."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import redis
from petiole_redis._client import FastClient
from petiole_redis._connection import Connection, _kernel_timeouts, address_of
from petiole_redis._errors import (
    BusyLoadingError,
    NoScriptError,
    RedisConnectionError,
    RedisTimeoutError,
    ResponseError,
)
from petiole_redis._options import parse_url
from petiole_redis._replies import ReplyReader
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport

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
    return ReplyReader(_Trickle(data, size))  # type: ignore[arg-type]


def test_every_reply_shape_comes_back_as_a_plain_value(
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


def test_error_replies_raise_their_types_and_stay_in_place_inside_a_pipeline(
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
        with pytest.raises(RedisConnectionError):
            fast.execute_command("PING")
    finally:
        transport.close()


def test_a_read_that_times_out_is_a_timeout_error() -> None:
    left, right = socket.socketpair()
    try:
        left.settimeout(0.01)
        with pytest.raises(RedisTimeoutError):
            ReplyReader(left).read()
    finally:
        left.close()
        right.close()


def test_a_server_that_never_answers_times_out_by_the_kernels_timer() -> None:
    """A plain socket is blocking, its timeout kept by the kernel (SO_RCVTIMEO):
    no poll before each send and receive, and a silent server still ends the
    read after ``socket_timeout_s`` with a timeout error (an outage, retried)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        url = f"redis://127.0.0.1:{port}/0?socket_timeout_s=1"
        connection = Connection(address_of(parse_url(url, {}, component="test")), protocol=2)
        try:
            connection.connect()  # protocol 2, no password, db 0: no handshake to wait for
            assert connection._sock is not None
            assert connection._sock.gettimeout() is None  # blocking: Python polls nothing
            started = time.monotonic()
            with pytest.raises(RedisTimeoutError, match="Timeout reading"):
                connection.command("PING")
            assert 0.9 <= time.monotonic() - started < 10
            assert not connection.connected  # out of step with the server: dropped
        finally:
            connection.disconnect()


def test_a_connection_that_does_not_spin_keeps_pythons_socket_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        url = f"redis://127.0.0.1:{port}/0?socket_timeout_s=1&reply_spin_us=0"
        connection = Connection(address_of(parse_url(url, {}, component="test")), protocol=2)
        try:
            connection.connect()
            assert connection._sock is not None
            assert connection._sock.gettimeout() == 1.0
        finally:
            connection.disconnect()


def test_a_reply_already_there_is_read_by_a_spinning_reader() -> None:
    left, right = socket.socketpair()
    try:
        _kernel_timeouts(left, 1.0)
        right.sendall(b"+PONG\r\n:7\r\n")
        reader = ReplyReader(left, spin_s=0.001)
        assert reader.read() == b"PONG"
        assert reader.read() == 7
        assert reader.spinning
    finally:
        left.close()
        right.close()


def test_a_reader_whose_spins_keep_finding_nothing_rests_from_spinning() -> None:
    """A server across a network answers later than any spin: after eight spins in
    a row found nothing the reader sleeps at once for 64 reads, then spins again."""
    left, right = socket.socketpair()
    try:
        _kernel_timeouts(left, 0.01)  # a read that found nothing ends in 10 ms
        reader = ReplyReader(left, spin_s=0.0001)
        for _ in range(8):  # nothing is sent: each spin, then each read, finds nothing
            assert reader.spinning
            with pytest.raises(RedisTimeoutError):
                reader.read()
        assert not reader.spinning
        for value in range(64):  # resting: each read sleeps in the kernel at once
            assert not reader.spinning
            right.sendall(b":%d\r\n" % value)
            assert reader.read() == value
        assert reader.spinning
    finally:
        left.close()
        right.close()


def test_resp3_replies_come_back_as_plain_values(redis_server: RedisServer, key: str) -> None:
    target = parse_url(redis_server.url, {}, component="test")
    connection = Connection(address_of(target), protocol=3)
    try:
        hello = connection.command("HELLO", 3)
        assert hello[b"proto"] == 3  # a map
        connection.command("HSET", key, "f", "v")
        assert connection.command("HGETALL", key) == {b"f": b"v"}
        assert connection.command("SISMEMBER", key + ":s", "x") == 0
        connection.command("SADD", key + ":s", "x")
        assert connection.command("SMEMBERS", key + ":s") == [b"x"]  # a set
        assert connection.command("GET", key + ":missing") is None  # RESP3 null
        assert connection.command("EVAL", "return redis.setresp(3) or true", 0) is True
        assert connection.command("INCRBYFLOAT", key + ":f", "1.5") == b"1.5"
        connection.command("DEL", key, key + ":s", key + ":f")
    finally:
        connection.disconnect()


def test_a_push_between_replies_goes_to_the_handler_and_is_skipped(
    redis_server: RedisServer, client: redis.Redis, key: str
) -> None:
    target = parse_url(redis_server.url, {}, component="test")
    connection = Connection(address_of(target), protocol=3)
    pushes: list[list[object]] = []
    connection.on_push = pushes.append
    try:
        connection.command("CLIENT", "TRACKING", "ON")
        assert connection.command("GET", key) is None  # tracked from now on
        client.set(key, "changed")
        # The invalidation arrives before PING's reply: handed on, then skipped.
        assert connection.command("PING") == b"PONG"
        assert pushes == [[b"invalidate", [key.encode()]]]
        assert connection.command("GET", key) == b"changed"
        client.delete(key)
        assert connection.can_read(timeout=5)
        assert connection.read_response(push_request=True) == [b"invalidate", [key.encode()]]
    finally:
        connection.disconnect()


def test_error_replies_of_an_outage_raise_and_others_are_response_errors() -> None:
    loading = _reader_of(b"-LOADING Redis is loading the dataset in memory\r\n", 64)
    with pytest.raises(BusyLoadingError):
        loading.read()
    other = _reader_of(b"-ERR unknown command\r\n", 64)
    with pytest.raises(ResponseError, match="unknown command"):
        other.read()


@pytest.fixture(autouse=True)
def _no_leftover(fast: FastClient) -> Iterator[None]:
    yield
    assert fast.execute_command("PING") == b"PONG"  # nothing unread left behind
