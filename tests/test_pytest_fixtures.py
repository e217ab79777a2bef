"""The fixtures Petiole registers with pytest, used as a user's test suite would."""

from __future__ import annotations

import pytest

from petiole import Petiole, states
from petiole.worker import Worker


def test_worker_fixture_runs_tasks_of_the_app_fixture(
    petiole_app: Petiole, petiole_worker: Worker
) -> None:
    add = petiole_app.task(lambda x, y: x + y, name="add")
    assert add.delay(2, 3).get(timeout=5) == 5
    assert petiole_worker.app is petiole_app


def test_each_test_gets_an_isolated_in_memory_app(petiole_app: Petiole) -> None:
    assert petiole_app.settings.broker_url.startswith("memory://")
    assert petiole_app.settings.broker_url != "memory://overridden"
    assert petiole_app.transport.size(petiole_app.settings.default_queue) == 0


def test_eager_app_fixture_runs_tasks_at_delay(petiole_eager_app: Petiole) -> None:
    double = petiole_eager_app.task(lambda x: 2 * x, name="double")
    result = double.delay(21)
    assert result.state == states.SUCCESS
    assert result.get() == 42


class TestOverriddenConfig:
    @pytest.fixture
    def petiole_config(self) -> dict[str, object]:
        return {"broker_url": "memory://overridden", "backend_url": "memory://overridden"}

    def test_config_fixture_can_be_overridden(self, petiole_app: Petiole) -> None:
        assert petiole_app.settings.broker_url == "memory://overridden"
