"""Worker processes with their results on a real memcached and the broker on SQLite.

memcached holds only results (petiole-memcached is a result backend); the
broker is the embedded SQLite file, so a SIGKILLed worker's tasks come back
from it while its finished results are already on memcached.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Workers, run_sigkill_scenario, worker_env

from petiole import Petiole, chord
from petiole.loading import load_app

pytest.importorskip("petiole_memcached", reason="petiole-memcached is not installed")

from petiole_memcached.testing import MemcachedServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemcachedServer]:
    server = MemcachedServer(tmp_path_factory.mktemp("memcached")).start()
    yield server
    server.stop()


@pytest.fixture
def env(memcached_server: MemcachedServer, tmp_path: Path) -> dict[str, str]:
    # Short leases so a killed worker's tasks come back within seconds.
    return worker_env(f"sqlite:///{tmp_path / 'p.db'}", memcached_server.url, lease_s="3")


def test_thousand_tasks_with_a_sigkilled_worker_lose_none_with_results_on_memcached(
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    watcher = Petiole("watch", broker=env["PETIOLE_BROKER_URL"], backend=env["PETIOLE_BACKEND_URL"])
    try:
        summary, victim_pid = run_sigkill_scenario(
            env, tmp_path, lambda: watcher.transport.size("default")
        )
    finally:
        watcher.close()
    assert summary["missing"] == []
    assert summary["wrong"] == []
    # The victim had been doing real work when it died (its pid names its results).
    assert any(name.endswith(f":{victim_pid}") for name in summary["by_worker"]), summary


@pytest.fixture
def canvas_app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Petiole]:
    for name in ("PETIOLE_BROKER_URL", "PETIOLE_BACKEND_URL", "PETIOLE_LEASE_S"):
        monkeypatch.setenv(name, env[name])
    app = load_app("canvas_app")
    app.configure(broker_url=env["PETIOLE_BROKER_URL"], backend_url=env["PETIOLE_BACKEND_URL"])
    yield app
    app.close()


def test_chord_fires_once_on_memcached_when_members_are_redelivered_after_a_sigkill(
    canvas_app: Petiole, env: dict[str, str], tmp_path: Path
) -> None:
    app = canvas_app
    log = tmp_path / "callback.log"
    square, logged_sum = app.tasks["canvas.slow_square"], app.tasks["canvas.logged_sum"]
    workers = Workers(env, tmp_path, app_module="canvas_app")
    try:
        victim = workers.start("-P", "processes", "-c", "2")
        workers.start("-P", "processes", "-c", "2")
        workers.wait_ready()
        header = [square.s(i, 0.01) for i in range(200)]
        member_ids = [s.freeze().id for s in header]
        result = chord(header, logged_sum.s(str(log))).apply_async()
        deadline = time.monotonic() + 60
        while app.transport.size("default") > 140:
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.05)
        workers.kill(victim)  # its leased members come back to the other worker
        assert result.get(timeout=120) == sum(i * i for i in range(200)), workers.logs()
    finally:
        workers.stop_all()
    firings = log.read_text().splitlines()
    assert len(firings) == 1, (firings, workers.logs())
    members = app.backend.get_many(member_ids)
    assert len(members) == 200, sorted(set(member_ids) - set(members))
    by_victim = [r for r in members.values() if str(r.meta["worker"]).endswith(f":{victim.pid}")]
    assert 0 < len(by_victim) < 200, ("the victim must have been part of the run", workers.logs())
