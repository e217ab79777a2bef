"""A producer and two workers, each its own OS process, on the embedded SQLite default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole import Petiole

HERE = Path(__file__).parent
pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    db = tmp_path / "petiole.db"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PETIOLE_")}
    environ.update(
        PETIOLE_BROKER_URL=f"sqlite:///{db}",
        PETIOLE_BACKEND_URL=f"sqlite:///{db}",
        # Short leases so a killed worker's tasks come back within seconds.
        PETIOLE_LEASE_S="3",
        PYTHONPATH=str(HERE),
    )
    return environ


class Workers:
    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env = env
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"worker{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "petiole", "worker", "-A", "e2e_app", *args],
            cwd=HERE,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill reaches its children
        )
        self.procs.append(proc)
        return proc

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Block until every worker has logged that it is consuming."""
        deadline = time.monotonic() + timeout_s
        for index, proc in enumerate(self.procs):
            log = self.tmp_path / f"worker{index}.log"
            while " ready: " not in log.read_text(errors="replace"):
                assert proc.poll() is None, self.logs()[-3000:]
                assert time.monotonic() < deadline, self.logs()[-3000:]
                time.sleep(0.05)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("*.log")))


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    group = Workers(env, tmp_path)
    yield group
    group.stop_all()


def _producer(
    env: dict[str, str], count: int, delay_s: float, timeout_s: float
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "producer.py"), str(count), str(delay_s), str(timeout_s)],
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def _summary(producer: subprocess.Popen[str], timeout_s: float) -> dict[str, object]:
    out, _ = producer.communicate(timeout=timeout_s)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return lines[-1]


def test_thousand_tasks_on_two_worker_processes_all_correct(
    env: dict[str, str], workers: Workers
) -> None:
    workers.start("-P", "processes", "-c", "2")
    workers.start("-P", "threads", "-c", "4")
    workers.wait_ready()
    summary = _summary(_producer(env, 1000, 0.0, 120), timeout_s=150)
    assert summary["correct"] == 1000, (summary, workers.logs()[-3000:])


def test_sigkilled_worker_loses_no_task(
    env: dict[str, str], workers: Workers, tmp_path: Path
) -> None:
    victim = workers.start("-P", "processes", "-c", "2")
    workers.start("-P", "processes", "-c", "2")
    workers.wait_ready()
    producer = _producer(env, 1000, 0.005, 180)
    watcher = Petiole("watch", broker=env["PETIOLE_BROKER_URL"], backend=env["PETIOLE_BACKEND_URL"])
    # Kill the victim (and its pool children) once all are sent and 300 are done or running.
    assert producer.stdout is not None
    assert json.loads(producer.stdout.readline())["event"] == "sent"
    deadline = time.monotonic() + 60
    while watcher.transport.size("default") > 700:
        assert time.monotonic() < deadline, workers.logs()[-3000:]
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    summary = _summary(producer, timeout_s=200)
    watcher.close()
    assert summary["correct"] == 1000, (summary, workers.logs()[-3000:])
    assert summary["missing"] == []
    # The victim had been doing real work when it died (its pid names its results).
    by_worker = summary["by_worker"]
    assert isinstance(by_worker, dict)
    assert any(name.endswith(f":{victim.pid}") for name in by_worker), by_worker
