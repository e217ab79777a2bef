"""Faults caused for real: the server killed (SIGKILL) and started again on the
same port and data, with the append-only file and ``appendfsync always``."""

from __future__ import annotations

import logging
import time

import pytest
from petiole_redis.results import RedisBackend
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport

from petiole import states
from petiole.backend import ResultRecord
from petiole.errors import TransportError
from petiole.testing import wait_until
from petiole.testing.in_thread import InThread


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "petiole_redis" and "connection lost" in r.getMessage()
    ]


def test_publishes_wait_through_a_restart_and_log_one_line(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="petiole_redis")
    transport = RedisTransport(own_redis_server.url, {})
    transport.publish("q", b"before")
    held = transport.reserve(["q"], max_messages=1, wait_s=0, lease_s=60)
    own_redis_server.kill()

    def publish_during_outage() -> None:
        for i in range(20):
            transport.publish("q", f"during-{i}".encode())

    publishers = [InThread(publish_during_outage) for _ in range(3)]
    assert wait_until(lambda: outage_lines(caplog) != [], timeout_s=10)
    own_redis_server.start()

    try:
        for publisher in publishers:
            publisher.result(timeout_s=30)
        assert transport.size("q") == 61  # nothing acknowledged was lost
        transport.ack(held[0])  # the lease survived the restart
        assert transport.size("q") == 60
        assert len(outage_lines(caplog)) == 1
        assert any("reconnected after" in r.getMessage() for r in caplog.records)
    finally:
        transport.close()


def test_wait_returns_a_result_stored_after_a_restart(own_redis_server: RedisServer) -> None:
    backend = RedisBackend(own_redis_server.url, {})
    waiter = InThread(lambda: backend.wait(["t"], timeout_s=30))
    try:
        own_redis_server.restart()
        writer = RedisBackend(own_redis_server.url, {})
        writer.store(ResultRecord("t", states.SUCCESS, b"42", date_done=time.time()), ttl_s=60)
        writer.close()
        found = waiter.result(timeout_s=30)
        assert list(found) == ["t"]
        assert found["t"].payload == b"42"
    finally:
        backend.close()


def test_outage_longer_than_reconnect_timeout_raises_with_the_password_masked(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = RedisServer(tmp_path_factory.mktemp("auth"), password="s3cret").start()
    transport = RedisTransport(server.url, {"reconnect_timeout_s": 0.3})
    try:
        server.kill()
        start = time.monotonic()
        with pytest.raises(TransportError) as info:
            transport.publish("q", b"lost?")
        assert time.monotonic() - start < 5
        assert "s3cret" not in str(info.value)
        assert "redis://:***@127.0.0.1" in str(info.value)
        assert "unreachable" in str(info.value)
    finally:
        transport.close()
        server.stop()


def test_reserve_returns_empty_after_its_wait_while_the_server_is_down(
    own_redis_server: RedisServer,
) -> None:
    transport = RedisTransport(own_redis_server.url, {})
    try:
        own_redis_server.kill()
        start = time.monotonic()
        assert transport.reserve(["q"], max_messages=1, wait_s=0.5, lease_s=30) == []
        assert time.monotonic() - start < 3
    finally:
        transport.close()


@pytest.mark.parametrize("checked", [True, False], ids=["idle-checked", "just-used"])
def test_a_connection_the_server_closed_between_calls_costs_no_call(
    own_redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, checked: bool
) -> None:
    # An idle connection is checked before use and replaced; one used a moment
    # ago is not checked (a system call per command), and the call that finds it
    # closed is retried on a new one: either way the publish lands, once.
    from petiole_redis import _client

    monkeypatch.setattr(_client, "_IDLE_CHECK_S", 0.0 if checked else 3600.0)
    transport = RedisTransport(own_redis_server.url, {})
    try:
        transport.publish("q", b"first")
        killed = own_redis_server.client().execute_command("CLIENT", "KILL", "TYPE", "normal")
        assert killed >= 1

        transport.publish("q", b"second")

        assert transport.size("q") == 2
        got = transport.reserve(["q"], max_messages=5, wait_s=0, lease_s=60)
        assert sorted(d.payload for d in got) == [b"first", b"second"]
    finally:
        transport.close()
