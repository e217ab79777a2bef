"""The worker warns at start about tasks that may run longer than the broker lets a
delivery stay unacknowledged (``capabilities.max_unsettled_s``)."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator

import pytest

from petiole import Petiole
from petiole.testing.in_thread import start_worker


@pytest.fixture
def app() -> Iterator[Petiole]:
    url = f"memory://{uuid.uuid4().hex}"
    app = Petiole("limits", broker=url, backend=url, config_file="/dev/null")

    @app.task(name="quick", time_limit_s=30)
    def quick() -> None: ...

    @app.task(name="long", time_limit_s=7200)
    def long() -> None: ...

    @app.task(name="unbounded")
    def unbounded() -> None: ...

    yield app
    app.close()


def limit_broker(app: Petiole, seconds: float | None) -> None:
    transport = app.transport
    transport.capabilities = dataclasses.replace(  # type: ignore[misc]
        transport.capabilities, max_unsettled_s=seconds
    )


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_task_whose_time_limit_exceeds_the_brokers_is_named_at_start(
    app: Petiole, caplog: pytest.LogCaptureFixture
) -> None:
    limit_broker(app, 1800)
    with caplog.at_level(logging.WARNING, logger="petiole"), start_worker(app):
        pass
    [line] = [w for w in warnings_of(caplog) if "unacknowledged" in w]
    assert "1800 s" in line
    assert "long (7200 s)" in line
    assert "quick" not in line
    assert "unbounded" not in line
    assert "consumer_timeout_s" in line


def test_the_apps_time_limit_counts_for_tasks_without_their_own(
    app: Petiole, caplog: pytest.LogCaptureFixture
) -> None:
    app.configure(time_limit_s=3600)
    limit_broker(app, 1800)
    with caplog.at_level(logging.WARNING, logger="petiole"), start_worker(app):
        pass
    [line] = [w for w in warnings_of(caplog) if "unacknowledged" in w]
    assert "unbounded (3600 s)" in line
    assert "quick" not in line


def test_no_warning_without_a_broker_limit(app: Petiole, caplog: pytest.LogCaptureFixture) -> None:
    limit_broker(app, None)
    with caplog.at_level(logging.WARNING, logger="petiole"), start_worker(app):
        pass
    assert not [w for w in warnings_of(caplog) if "unacknowledged" in w]
