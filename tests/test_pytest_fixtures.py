"""The fixtures Petiole registers with pytest, used as a user's test suite would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


# A user's app, defined once at module level as in their proj/tasks.py.
users_app = Petiole("proj", broker="sqlite:///never-used-in-tests.db")


@users_app.task(name="proj.add")
def users_add(x: int, y: int) -> int:
    return x + y


class TestTheUsersOwnApp:
    """The pattern docs/getting-started.md shows: many tests in a row on one
    module-level app, with a project petiole.toml that must not leak in."""

    @pytest.fixture(autouse=True)
    def _project_config(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # What a project's own config would say: a real broker, a pool, plugin options.
        (tmp_path / "petiole.toml").write_text(
            'broker_url = "redis://127.0.0.1:1/0"\nworker_pool = "processes"\n'
            "broker_options = { key_prefix = 'proj' }\n"
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("PETIOLE_DEFAULT_QUEUE", "from-the-environment")

    @pytest.fixture
    def petiole_app(self, petiole_config: dict[str, object]) -> Iterator[Petiole]:
        with users_app.override(**petiole_config):
            yield users_app

    def test_the_eager_fixture_is_the_users_app_in_eager_mode(
        self, petiole_eager_app: Petiole
    ) -> None:
        # Not a fresh app: the user's tasks must run here, not go to the project's broker.
        assert petiole_eager_app is users_app
        result = users_add.delay(2, 3)
        assert (result.state, result.get()) == (states.SUCCESS, 5)
        assert users_app.settings.broker_url.startswith("memory://")

    @pytest.mark.parametrize("n", range(3))
    def test_many_tests_in_a_row_run_the_users_tasks(
        self, petiole_app: Petiole, petiole_worker: Worker, n: int
    ) -> None:
        assert petiole_app.settings.broker_url.startswith("memory://")
        assert petiole_app.settings.default_queue == "default"
        assert users_add.delay(n, 1).get(timeout=5) == n + 1

    def test_the_app_has_its_own_settings_again_after_the_block(self) -> None:
        with users_app.override(broker_url="memory://for-a-while"):
            assert users_app.settings.broker_url == "memory://for-a-while"
        assert users_app.settings.broker_url == "sqlite:///never-used-in-tests.db"
        # Outside the block the config file and environment apply again.
        assert users_app.settings.default_queue == "from-the-environment"
