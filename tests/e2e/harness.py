"""Running workers and producers as separate OS processes, for end-to-end tests.

Every end-to-end test (on SQLite, Redis, SQS, ...) uses these: the broker and
result store are chosen by PETIOLE_* variables in the environment given, so
the same app module (e2e_app.py) and producer (producer.py) serve them all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def worker_env(broker_url: str, backend_url: str, **settings: str) -> dict[str, str]:
    """The environment of a test process: ours minus any PETIOLE_*, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETIOLE_")}
    env.update(PETIOLE_BROKER_URL=broker_url, PETIOLE_BACKEND_URL=backend_url, PYTHONPATH=str(HERE))
    env.update({f"PETIOLE_{key.upper()}": value for key, value in settings.items()})
    return env


class Workers:
    """Worker processes (`petiole worker -A e2e_app ...`), each in its own process group."""

    def __init__(self, env: dict[str, str], log_dir: Path, app_module: str = "e2e_app") -> None:
        self.env = env
        self.log_dir = log_dir
        self.app_module = app_module
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"worker{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "petiole", "worker", "-A", self.app_module, *args],
            cwd=HERE,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill reaches its children
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, index: int) -> str:
        return (self.log_dir / f"worker{index}.log").read_text(errors="replace")

    def is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        """Whether this worker is alive and has logged that it is consuming."""
        return proc.poll() is None and " ready: " in self.log(self.procs.index(proc))

    def wait_ready(
        self, timeout_s: float = 60, procs: Sequence[subprocess.Popen[bytes]] | None = None
    ) -> None:
        """Block until every worker (or each of ``procs``) has logged that it is consuming."""
        deadline = time.monotonic() + timeout_s
        for proc in self.procs if procs is None else procs:
            index = self.procs.index(proc)
            while " ready: " not in self.log(index):
                assert proc.poll() is None, self.logs()
                assert time.monotonic() < deadline, self.logs()
                time.sleep(0.05)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a worker and its pool children, as the OOM killer would."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self, timeout_s: float = 30) -> list[int | None]:
        """SIGTERM every worker still running; return their exit codes."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return [proc.returncode for proc in self.procs]

    def kill_all(self) -> None:
        """SIGKILL every worker still running, with its children: the last resort of a
        test's ``finally``, so no worker outlives its test."""
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)

    def logs(self, tail_chars: int = 4000) -> str:
        text = "\n".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob("worker*.log"))
        )
        return text[-tail_chars:]


class Producer:
    """`producer.py COUNT DELAY_S TIMEOUT_S [OPTIONS...]` in its own process
    (see producer.py for the options)."""

    def __init__(
        self,
        env: dict[str, str],
        count: int,
        delay_s: float,
        timeout_s: float,
        options: Sequence[str] = (),
    ) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "producer.py"),
                str(count),
                str(delay_s),
                str(timeout_s),
                *options,
            ],
            cwd=HERE,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )

    def wait_sent(self) -> None:
        """Block until every task has been sent."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert json.loads(line)["event"] == "sent", line

    def summary(self, timeout_s: float) -> dict[str, Any]:
        """The producer's final report: sent, correct, wrong, missing, by_worker, seconds."""
        out, _ = self.proc.communicate(timeout=timeout_s)
        assert self.proc.returncode == 0, out[-4000:]
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        result: dict[str, Any] = lines[-1]
        return result

    def kill(self) -> None:
        """SIGKILL the producer if it is still running (a test's ``finally``)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def run_sigkill_scenario(
    env: dict[str, str],
    log_dir: Path,
    queue_size: Any,
    *,
    count: int = 1000,
    task_delay_s: float = 0.005,
    timeout_s: float = 180,
) -> tuple[dict[str, Any], int]:
    """Two workers; once all tasks are sent and 30% are done or running, SIGKILL one.

    ``queue_size()`` reports the broker's queue size. Returns the producer's
    summary and the killed worker's pid (its pid names the results it stored).
    """
    workers = Workers(env, log_dir)
    try:
        victim = workers.start("-P", "processes", "-c", "2")
        workers.start("-P", "processes", "-c", "2")
        workers.wait_ready()
        producer = Producer(env, count, task_delay_s, timeout_s)
        producer.wait_sent()
        deadline = time.monotonic() + 60
        while queue_size() > count * 0.7:
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.05)
        workers.kill(victim)
        summary = producer.summary(timeout_s=timeout_s + 30)
        assert summary["correct"] == count, (summary, workers.logs())
        return summary, victim.pid
    finally:
        workers.stop_all()
