"""A 500-member chord whose results live on a real Apache Cassandra node, run by
worker processes (broker: SQLite), one of them SIGKILLed mid-run so members are
redelivered. The callback must fire exactly once with all 500 results in order.

The chord join uses no Cassandra counters: each member adds its own row to the
group's set (a lightweight transaction that counts a redelivered member once),
and the member that completes the set claims the callback with
``INSERT ... IF NOT EXISTS``; only the winner sends it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import HERE, Workers, worker_env

from petiole import Petiole, chord
from petiole.loading import load_app
from petiole.testing.servers import require_module

pytestmark = pytest.mark.slow

APPS = Path(__file__).resolve().parents[2] / "plugins" / "petiole-cassandra" / "tests" / "apps"
APP_MODULE = "cassandra_app"


class CassandraWorkers(Workers):
    """Workers running the plugin's test app (``cassandra_app``) instead of e2e_app."""

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"worker{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "petiole", "worker", "-A", APP_MODULE, *args],
            cwd=HERE,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc


@pytest.fixture(scope="module")
def backend_url() -> str:
    require_module("petiole_cassandra", install_hint="pip install -e plugins/petiole-cassandra")
    from petiole_cassandra.testing import shared_node

    return shared_node().url("petiole_e2e")


@pytest.fixture
def env(backend_url: str, tmp_path: Path) -> dict[str, str]:
    # Short leases so the killed worker's tasks come back within seconds.
    env = worker_env(f"sqlite:///{tmp_path / 'p.db'}", backend_url, lease_s="3")
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{APPS}"
    return env


@pytest.fixture
def app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Petiole]:
    monkeypatch.syspath_prepend(str(APPS))
    app = load_app(APP_MODULE)
    app.configure(broker_url=env["PETIOLE_BROKER_URL"], backend_url=env["PETIOLE_BACKEND_URL"])
    yield app
    app.close()


def test_500_member_chord_fires_once_with_every_result_in_order_despite_a_sigkill(
    app: Petiole, env: dict[str, str], tmp_path: Path
) -> None:
    members_log, callback_log = tmp_path / "members.log", tmp_path / "callback.log"
    member, callback = app.tasks["cass.member"], app.tasks["cass.callback"]
    size = 500
    workers = CassandraWorkers(env, tmp_path)
    try:
        victim = workers.start("-P", "processes", "-c", "2")
        workers.start("-P", "processes", "-c", "2")
        workers.wait_ready()
        header = [member.s(i, str(members_log), 0.03) for i in range(size)]
        result = chord(header, callback.s(str(callback_log))).apply_async()

        # Kill one worker (and its pool children) while it is running members.
        deadline = time.monotonic() + 60
        while not members_log.exists() or len(members_log.read_text().splitlines()) < size // 3:
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.05)
        workers.kill(victim)
        workers.start("-P", "threads", "-c", "4")

        assert result.get(timeout=180) == size
        # Let any late duplicate of the callback show itself before counting.
        time.sleep(4)
    finally:
        workers.stop_all()

    runs = callback_log.read_text().splitlines()
    assert len(runs) == 1, f"the callback ran {len(runs)} times"
    assert json.loads(runs[0]) == [i * i for i in range(size)]
    executions = [line.split() for line in members_log.read_text().splitlines()]
    assert {int(x) for _, x, _ in executions} == set(range(size))
    # Members really were redelivered: some ran (or were leased) a second time.
    assert any(int(count) > 1 for _, _, count in executions), "no member was redelivered"
