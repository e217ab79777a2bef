"""Chords and chains across worker processes on SQLite, including a SIGKILLed worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Workers, run_chord_sigkill_scenario, worker_env

from petiole import Petiole, chain, chord

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    return worker_env(url, url, lease_s="3")


def test_a_500_member_chord_is_summed_by_its_callback(
    canvas_app: Petiole, env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "callback.log"
    add, logged_sum = canvas_app.tasks["canvas.add"], canvas_app.tasks["canvas.logged_sum"]
    workers = Workers(env, tmp_path, app_module="canvas_app")
    try:
        workers.start("-P", "processes", "-c", "2")
        workers.start("-P", "threads", "-c", "4")
        workers.wait_ready()
        result = chord([add.s(i, i) for i in range(500)], logged_sum.s(str(log))).apply_async()
        assert result.get(timeout=120) == sum(2 * i for i in range(500))
    finally:
        workers.stop_all()
    assert len(log.read_text().splitlines()) == 1


def test_a_50_step_chain_runs_in_order(
    canvas_app: Petiole, env: dict[str, str], tmp_path: Path
) -> None:
    add = canvas_app.tasks["canvas.add"]
    workers = Workers(env, tmp_path, app_module="canvas_app")
    try:
        workers.start("-P", "processes", "-c", "2")
        workers.start("-P", "threads", "-c", "2")
        workers.wait_ready()
        result = chain(add.s(0, 1), *(add.s(1) for _ in range(49))).apply_async()
        assert result.get(timeout=120) == 50
    finally:
        workers.stop_all()
    steps = 0
    node = canvas_app.AsyncResult(result.id)
    while node is not None:
        steps += 1
        node = node.parent
    assert steps == 50


def test_chord_fires_once_when_members_are_redelivered_after_a_sigkill(
    canvas_app: Petiole, env: dict[str, str], tmp_path: Path
) -> None:
    run = run_chord_sigkill_scenario(canvas_app, env, tmp_path, size=500)
    assert 0 < run.members_by_victim() < 500, "the victim must have been part of the run"
    assert len(run.firings) == 1, run.firings
    assert run.firings[0].endswith(" 500")
