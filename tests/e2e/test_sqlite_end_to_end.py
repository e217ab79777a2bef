"""A producer and two workers, each its own OS process, on the embedded SQLite default."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Producer, Workers, run_sigkill_scenario, worker_env

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'petiole.db'}"
    # Short leases so a killed worker's tasks come back within seconds.
    return worker_env(url, url, lease_s="3")


def test_thousand_tasks_on_two_worker_processes_all_correct(
    env: dict[str, str], tmp_path: Path
) -> None:
    workers = Workers(env, tmp_path)
    try:
        workers.start("-P", "processes", "-c", "2")
        workers.start("-P", "threads", "-c", "4")
        workers.wait_ready()
        summary = Producer(env, 1000, 0.0, 120).summary(timeout_s=150)
    finally:
        codes = workers.stop_all()
    assert summary["correct"] == 1000, (summary, workers.logs())
    assert codes == [0, 0], workers.logs()


def test_sigkilled_worker_loses_no_task(env: dict[str, str], tmp_path: Path) -> None:
    summary = run_sigkill_scenario(env, tmp_path)
    assert (summary["missing"], summary["wrong"]) == ([], []), summary
