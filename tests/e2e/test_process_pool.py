"""The processes pool with a real app module, in this process's worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import loaded_app

from petiole import Petiole
from petiole.errors import PetioleError
from petiole.pools.processes import ProcessPool
from petiole.testing.in_thread import start_worker

pytestmark = pytest.mark.slow


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Petiole]:
    with loaded_app("e2e_app", f"sqlite:///{tmp_path / 'p.db'}", monkeypatch) as app:
        yield app


def test_tasks_run_in_child_processes(app: Petiole) -> None:
    import os

    with start_worker(app, pool="processes", concurrency=2) as worker:
        pids = {app.tasks["e2e.pid"].delay().get(timeout=30) for _ in range(6)}
        children = set(worker.pool.child_pids())
    assert os.getpid() not in pids
    assert pids <= children


def test_a_child_that_dies_mid_task_is_replaced_and_the_task_runs_again(app: Petiole) -> None:
    with start_worker(app, pool="processes", concurrency=1) as worker:
        assert app.tasks["e2e.die_once"].delay().get(timeout=30) == 2
        assert app.tasks["e2e.square"].delay(9).get(timeout=30) == 81
    assert worker.counts["lost"] == 1


def test_an_app_children_cannot_import_fails_at_start_with_the_reason() -> None:
    pool = ProcessPool(1)

    class Runner:
        app_path = "no_such_module_here:app"
        hostname = "test"

        def run(self, job: object) -> object:
            raise AssertionError("never called")

    with pytest.raises(PetioleError, match="no_such_module_here"):
        pool.start(Runner())  # type: ignore[arg-type]


def test_an_app_without_an_import_path_is_refused_by_the_processes_pool() -> None:
    from petiole.errors import ConfigError

    class Runner:
        app_path = None
        hostname = "test"

    with pytest.raises(ConfigError, match="-P threads"):
        ProcessPool(1).start(Runner())  # type: ignore[arg-type]
