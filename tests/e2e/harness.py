"""Running workers and producers as separate OS processes, for end-to-end tests.

Every end-to-end test (on SQLite, Redis, SQS, ...) uses these: the broker and
result store are chosen by PETIOLE_* variables in the environment given, so
the same app module (e2e_app.py) and producer (producer.py) serve them all.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from petiole import Petiole, chord
from petiole.backend import ResultRecord
from petiole.loading import load_app

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

    def wait_for_queue(self, queue_size: Callable[[], int], most: float) -> None:
        """Block until ``queue_size()`` is at most ``most`` (tasks were taken), for up
        to a minute; fail with the workers' logs."""
        deadline = time.monotonic() + 60
        while queue_size() > most:
            assert time.monotonic() < deadline, self.logs()
            time.sleep(0.05)

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


def produce_until_under_way(
    env: dict[str, str],
    workers: Workers,
    queue_size: Callable[[], int],
    *,
    count: int = 1000,
    task_delay_s: float,
    timeout_s: float,
) -> Producer:
    """Start a producer of ``count`` tasks and return it once every task is sent and
    30% are done or running (``queue_size()`` reports the broker's queue)."""
    producer = Producer(env, count, task_delay_s, timeout_s)
    producer.wait_sent()
    workers.wait_for_queue(queue_size, count * 0.7)
    return producer


def run_sigkill_scenario(
    env: dict[str, str],
    log_dir: Path,
    *,
    count: int = 1000,
    task_delay_s: float = 0.005,
    timeout_s: float = 180,
) -> dict[str, Any]:
    """Two workers; once all tasks are sent and 30% are done or running, SIGKILL one.

    Returns the producer's summary (see :meth:`Producer.summary`), once it has
    checked that the killed worker had been doing real work (its pid names the
    results it stored): else the scenario did not happen.
    """
    watcher = Petiole("watch", broker=env["PETIOLE_BROKER_URL"], backend=env["PETIOLE_BACKEND_URL"])
    workers = Workers(env, log_dir)
    try:
        victim = workers.start("-P", "processes", "-c", "2")
        workers.start("-P", "processes", "-c", "2")
        workers.wait_ready()
        producer = produce_until_under_way(
            env,
            workers,
            lambda: watcher.transport.size("default"),
            count=count,
            task_delay_s=task_delay_s,
            timeout_s=timeout_s,
        )
        workers.kill(victim)
        summary = producer.summary(timeout_s=timeout_s + 30)
        assert summary["correct"] == count, (summary, workers.logs())
    finally:
        workers.stop_all()
        watcher.close()
    assert any(name.endswith(f":{victim.pid}") for name in summary["by_worker"]), summary
    return summary


@dataclass
class ChordRun:
    """What :func:`run_chord_sigkill_scenario` saw."""

    #: The members' result records, by task id (those the backend still has).
    members: dict[str, ResultRecord]
    #: The lines the chord's callback logged, one per run of it.
    firings: list[str]
    victim_pid: int
    logs: str

    def members_by_victim(self) -> int:
        """How many members the killed worker stored (its pid names its results)."""
        suffix = f":{self.victim_pid}"
        return sum(str(r.meta["worker"]).endswith(suffix) for r in self.members.values())


def run_chord_sigkill_scenario(
    app: Petiole, env: dict[str, str], log_dir: Path, *, size: int
) -> ChordRun:
    """Two workers of ``canvas_app`` run a chord of ``size`` slow squares summed by its
    callback; once 30% are done or running, one is SIGKILLed and its leased members
    come back to the other. Checks the chord's result."""
    log = log_dir / "callback.log"
    square, logged_sum = app.tasks["canvas.slow_square"], app.tasks["canvas.logged_sum"]
    workers = Workers(env, log_dir, app_module="canvas_app")
    try:
        victim = workers.start("-P", "processes", "-c", "2")
        workers.start("-P", "processes", "-c", "2")
        workers.wait_ready()
        header = [square.s(i, 0.01) for i in range(size)]
        member_ids = [s.freeze().id for s in header]
        result = chord(header, logged_sum.s(str(log))).apply_async()
        workers.wait_for_queue(lambda: app.transport.size("default"), size * 0.7)
        workers.kill(victim)
        assert result.get(timeout=120) == sum(i * i for i in range(size)), workers.logs()
    finally:
        workers.stop_all()
    members = app.backend.get_many(member_ids)
    return ChordRun(members, log.read_text().splitlines(), victim.pid, workers.logs())


@contextmanager
def loaded_app(module: str, url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Petiole]:
    """The app ``module`` of this folder, freshly imported, on ``url`` (broker and
    results) given through the environment, where a process pool's children,
    which load the app afresh, read it too."""
    monkeypatch.setenv("PETIOLE_BROKER_URL", url)
    monkeypatch.setenv("PETIOLE_BACKEND_URL", url)
    monkeypatch.syspath_prepend(str(HERE))
    sys.modules.pop(module, None)
    app = load_app(module)
    try:
        yield app
    finally:
        app.close()
        sys.modules.pop(module, None)


class OutageLines(logging.Handler):
    """Collects a plugin's outage warnings (lines containing ``marker``); ``seen`` is
    set by the first. Attach it to the plugin's logger for the test's duration."""

    def __init__(self, marker: str = "connection lost") -> None:
        super().__init__(logging.WARNING)
        self.marker = marker
        self.lines: list[str] = []
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.marker in message:
            self.lines.append(message)
            self.seen.set()
