"""Waits honour their timeout while the server is down, and a server that comes
back without its data is noticed, logged as such, and fails the waits that
could otherwise never end. The server is killed and started again for real;
"without its data" deletes its files in between (as no persistence would)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from petiole_redis.results import RedisBackend
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport

from petiole import Petiole
from petiole.errors import ResultBackendError, ResultsLost, ResultTimeout
from petiole.testing import wait_until
from petiole.testing.in_thread import InThread

TIMEOUT_S = 1.0
MARGIN_S = 1.0


@pytest.fixture
def app(own_redis_server: RedisServer) -> Iterator[Petiole]:
    app = Petiole(
        "outages",
        broker=own_redis_server.url,
        backend=own_redis_server.url,
        config_file="/dev/null",
    )
    yield app
    app.close()


def lost_data_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "petiole_redis" and "restarted without its data" in r.getMessage()
    ]


def run_id_of(server: RedisServer) -> str:
    with server.client() as client:
        return str(client.info("server")["run_id"])


def test_get_with_a_timeout_returns_in_time_while_the_server_is_down_and_says_so(
    own_redis_server: RedisServer, app: Petiole
) -> None:
    result = app.AsyncResult("never-stored")
    app.backend.get_many(["warm-up"])  # connected before the outage
    own_redis_server.kill()

    started = time.monotonic()
    with pytest.raises(ResultTimeout) as info:
        result.get(timeout=TIMEOUT_S)
    took_s = time.monotonic() - started

    assert TIMEOUT_S - 0.1 <= took_s < TIMEOUT_S + MARGIN_S
    assert "the result store (redis result backend redis://127.0.0.1:" in str(info.value)
    assert "was unreachable" in str(info.value)
    assert "never-stored" in str(info.value)


def test_wait_for_several_with_a_timeout_returns_in_time_while_the_server_is_down(
    own_redis_server: RedisServer,
) -> None:
    backend = RedisBackend(own_redis_server.url, {})
    try:
        own_redis_server.kill()
        started = time.monotonic()
        with pytest.raises(ResultTimeout, match=r"no result for 2 tasks .* was unreachable"):
            backend.wait(["a", "b"], timeout_s=TIMEOUT_S)
        assert time.monotonic() - started < TIMEOUT_S + MARGIN_S
    finally:
        backend.close()


def test_wait_for_several_without_a_timeout_fails_once_the_outage_outlasts_reconnect_timeout(
    own_redis_server: RedisServer,
) -> None:
    backend = RedisBackend(
        own_redis_server.url, {"reconnect_timeout_s": 0.5, "socket_timeout_s": 2}
    )
    try:
        waiter = InThread(lambda: backend.wait(["a", "b"], timeout_s=None))
        with own_redis_server.client() as client:
            # Read (MGET) with tracking on: from here on the wait waits for the server's push.
            assert wait_until(
                lambda: any(c["cmd"] == "mget" for c in client.client_list()), timeout_s=5
            )
        own_redis_server.kill()

        with pytest.raises(ResultBackendError, match="wait for 2 tasks: unreachable for"):
            waiter.result(timeout_s=5)
    finally:
        backend.close()


def test_restart_without_data_is_logged_once_as_lost_data(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="petiole_redis")
    transport = RedisTransport(own_redis_server.url, {})
    backend = RedisBackend(own_redis_server.url, {})
    try:
        run_before = run_id_of(own_redis_server)
        own_redis_server.restart(keep_data=False)
        run_after = run_id_of(own_redis_server)

        transport.publish("q", b"after")  # both reconnect, and both notice
        backend.get_many(["t"])

        assert (transport.data_generation, backend.data_generation) == (1, 1)
        assert transport.data_lost_at is not None
        [record] = [r for r in caplog.records if "restarted without its data" in r.getMessage()]
        assert record.levelno == logging.ERROR
        assert record.getMessage() == (
            f"redis at {own_redis_server.url} restarted without its data "
            f"(run_id {run_before} -> {run_after}): messages and results stored before are gone"
        )
    finally:
        transport.close()
        backend.close()


def test_restart_with_its_data_is_not_lost_data(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="petiole_redis")
    transport = RedisTransport(own_redis_server.url, {})
    try:
        transport.publish("q", b"kept")
        own_redis_server.restart()

        assert transport.size("q") == 1
        assert transport.data_generation == 0
        assert transport.data_lost_at is None
        assert lost_data_lines(caplog) == []
    finally:
        transport.close()


def test_every_client_notices_the_loss_after_another_wrote_a_new_marker(
    own_redis_server: RedisServer,
) -> None:
    first = RedisTransport(own_redis_server.url, {})
    second = RedisTransport(own_redis_server.url, {})
    late = None
    try:
        own_redis_server.restart(keep_data=False)
        first.publish("q", b"x")  # finds the marker gone and writes a new one
        late = RedisTransport(own_redis_server.url, {})  # starts after: nothing was lost to it

        second.publish("q", b"y")

        assert (first.data_generation, second.data_generation, late.data_generation) == (1, 1, 0)
    finally:
        for transport in (first, second, late):
            if transport is not None:
                transport.close()


def test_waiting_get_without_a_timeout_raises_results_lost_when_the_server_comes_back_empty(
    own_redis_server: RedisServer, app: Petiole
) -> None:
    result = app.AsyncResult("stored-never")
    app.backend.get_many(["warm-up"])
    waiter = InThread(result.get)
    own_redis_server.restart(keep_data=False)

    with pytest.raises(
        ResultsLost, match="restarted without its data while waiting for task 'stored-never'"
    ):
        waiter.result(timeout_s=10)


def test_waiting_for_several_raises_results_lost_when_the_server_comes_back_empty(
    own_redis_server: RedisServer,
) -> None:
    backend = RedisBackend(own_redis_server.url, {})
    try:
        waiter = InThread(lambda: backend.wait(["a", "b"], timeout_s=None))
        own_redis_server.restart(keep_data=False)

        with pytest.raises(ResultsLost, match="while waiting for 2 tasks"):
            waiter.result(timeout_s=10)
    finally:
        backend.close()


def test_a_lease_lost_with_the_data_fails_to_extend_and_the_transport_says_why(
    own_redis_server: RedisServer,
) -> None:
    transport = RedisTransport(own_redis_server.url, {})
    try:
        transport.publish("q", b"held")
        [delivery] = transport.reserve(["q"], max_messages=1, wait_s=0, lease_s=30)
        generation = transport.data_generation
        own_redis_server.restart(keep_data=False)

        assert transport.extend(delivery, lease_s=30) is False

        assert transport.data_generation == generation + 1
        lost_at = transport.data_lost_at
        assert lost_at is not None
        assert time.time() - 10 < lost_at <= time.time()
    finally:
        transport.close()
