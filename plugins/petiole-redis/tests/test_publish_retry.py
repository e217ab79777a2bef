"""``apply_async(retry=..., retry_policy=...)`` through a Redis broker that is down
for a while: the producer's own retries after the transport gave up its outage window."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from petiole_redis.testing import RedisServer

from petiole import Petiole
from petiole.errors import ConfigError, TransportError
from petiole.testing import wait_until
from petiole.testing.in_thread import InThread


def _app(server: RedisServer, tmp_path: Path) -> Petiole:
    # The transport rides out 0.2 s of outage itself, then raises: what the policy retries.
    return Petiole(
        "retrying",
        broker=server.url,
        backend=f"sqlite:///{tmp_path / 'results.db'}",
        broker_options={"reconnect_timeout_s": 0.2},
        config_file="/dev/null",
    )


def test_a_publish_retried_by_its_policy_lands_once_the_broker_is_back(
    own_redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="petiole.producer")
    app = _app(own_redis_server, tmp_path)
    try:

        @app.task
        def job(x: int) -> int:
            return x

        assert app.transport.size("default") == 0  # connected once, while it was up
        own_redis_server.stop()
        policy = {
            "max_retries": 200,
            "interval_start": 0.05,
            "interval_step": 0.05,
            "interval_max": 0.1,
        }
        sending = InThread(lambda: job.apply_async((1,), retry_policy=policy))
        assert wait_until(lambda: "retrying in" in caplog.text, timeout_s=10)
        own_redis_server.start()
        result = sending.result(timeout_s=30)
        assert app.transport.size("default") == 1
        assert result.id in caplog.text  # each retry's line names the task
    finally:
        app.close()


def test_a_processs_first_send_during_an_outage_is_retried_by_its_policy(
    own_redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The transport is made (and connects) at the first send: that send rides out
    an outage under the policy too (it failed at once, whatever the policy said)."""
    caplog.set_level(logging.WARNING, logger="petiole.producer")
    own_redis_server.stop()
    app = _app(own_redis_server, tmp_path)
    try:

        @app.task
        def job(x: int) -> int:
            return x

        policy = {"max_retries": 200, "interval_start": 0.1, "interval_max": 0.1}
        sending = InThread(lambda: job.apply_async((1,), retry_policy=policy))
        assert wait_until(lambda: "retrying in" in caplog.text, timeout_s=10)
        own_redis_server.start()
        result = sending.result(timeout_s=30)
        assert app.transport.size("default") == 1
        assert result.id in caplog.text
    finally:
        app.close()


def test_without_retry_the_transports_error_reaches_the_caller(
    own_redis_server: RedisServer, tmp_path: Path
) -> None:
    app = _app(own_redis_server, tmp_path)
    try:

        @app.task
        def job() -> None:
            pass

        app.transport.size("default")
        own_redis_server.stop()
        with pytest.raises(TransportError, match="unreachable"):
            job.apply_async(retry=False)
        policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0, "interval_max": 0}
        with pytest.raises(TransportError, match="gave up after 3 attempts"):
            job.apply_async(retry_policy=policy)
    finally:
        app.close()


def test_a_retry_policy_with_an_unknown_key_is_refused_before_sending(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    app = _app(redis_server, tmp_path)
    try:

        @app.task
        def job() -> None:
            pass

        with pytest.raises(ConfigError, match=r"unknown retry_policy key.*max_retries"):
            job.apply_async(retry_policy={"max_retry": 3})
    finally:
        app.close()
