"""Chords and chains across worker processes on SQLite, including a SIGKILLed worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Workers, worker_env

from petiole import Petiole, chain, chord
from petiole.loading import load_app

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    return worker_env(url, url, lease_s="3")


@pytest.fixture
def app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Petiole]:
    for name in ("PETIOLE_BROKER_URL", "PETIOLE_BACKEND_URL", "PETIOLE_LEASE_S"):
        monkeypatch.setenv(name, env[name])
    app = load_app("canvas_app")
    app.configure(broker_url=env["PETIOLE_BROKER_URL"], backend_url=env["PETIOLE_BACKEND_URL"])
    yield app
    app.close()


def test_a_500_member_chord_is_summed_by_its_callback(
    app: Petiole, env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "callback.log"
    add, logged_sum = app.tasks["canvas.add"], app.tasks["canvas.logged_sum"]
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


def test_a_50_step_chain_runs_in_order(app: Petiole, env: dict[str, str], tmp_path: Path) -> None:
    add = app.tasks["canvas.add"]
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
    node = app.AsyncResult(result.id)
    while node is not None:
        steps += 1
        node = node.parent
    assert steps == 50


def test_chord_fires_once_when_members_are_redelivered_after_a_sigkill(
    app: Petiole, env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "callback.log"
    square, logged_sum = app.tasks["canvas.slow_square"], app.tasks["canvas.logged_sum"]
    workers = Workers(env, tmp_path, app_module="canvas_app")
    try:
        victim = workers.start("-P", "processes", "-c", "2")
        workers.start("-P", "processes", "-c", "2")
        workers.wait_ready()
        header = [square.s(i, 0.01) for i in range(500)]
        member_ids = [s.freeze().id for s in header]
        result = chord(header, logged_sum.s(str(log))).apply_async()
        deadline = time.monotonic() + 60
        while app.transport.size("default") > 350:
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.05)
        workers.kill(victim)  # its leased members come back to the other worker
        assert result.get(timeout=120) == sum(i * i for i in range(500))
    finally:
        workers.stop_all()
    members = app.backend.get_many(member_ids)
    by_victim = [r for r in members.values() if str(r.meta["worker"]).endswith(f":{victim.pid}")]
    assert 0 < len(by_victim) < 500, "the victim must have been part of the run"
    firings = log.read_text().splitlines()
    assert len(firings) == 1, firings
    assert firings[0].endswith(" 500")
