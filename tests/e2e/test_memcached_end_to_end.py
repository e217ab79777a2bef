"""Worker processes with their results on a real memcached and the broker on SQLite.

memcached holds only results (petiole-memcached is a result backend); the
broker is the embedded SQLite file, so a SIGKILLed worker's tasks come back
from it while its finished results are already on memcached.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import run_chord_sigkill_scenario, run_sigkill_scenario, worker_env

from petiole import Petiole
from petiole.testing.servers import serve

pytest.importorskip("petiole_memcached", reason="petiole-memcached is not installed")

from petiole_memcached.testing import MemcachedServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemcachedServer]:
    yield from serve(MemcachedServer(tmp_path_factory.mktemp("memcached")))


@pytest.fixture
def env(memcached_server: MemcachedServer, tmp_path: Path) -> dict[str, str]:
    # Short leases so a killed worker's tasks come back within seconds.
    return worker_env(f"sqlite:///{tmp_path / 'p.db'}", memcached_server.url, lease_s="3")


def test_thousand_tasks_with_a_sigkilled_worker_lose_none_with_results_on_memcached(
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    summary = run_sigkill_scenario(env, tmp_path)
    assert (summary["missing"], summary["wrong"]) == ([], []), summary


def test_chord_fires_once_on_memcached_when_members_are_redelivered_after_a_sigkill(
    canvas_app: Petiole, env: dict[str, str], tmp_path: Path
) -> None:
    run = run_chord_sigkill_scenario(canvas_app, env, tmp_path, size=200)
    assert len(run.firings) == 1, (run.firings, run.logs)
    assert len(run.members) == 200
    assert 0 < run.members_by_victim() < 200, (
        "the victim must have been part of the run",
        run.logs,
    )
