"""The eventlet pool in an eventlet-patched process: the pool conformance suite and the
pool's own behaviour (overlapping I/O, time limits, cancel).

Run only by ``run_patched.py`` (see test_patched_process.py); its name keeps the
repository's pytest run, which is never patched, from collecting it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from typing import Any

import eventlet
import eventlet.green.socket
import pytest
from petiole_eventlet.patching import missing_patches
from petiole_eventlet.pool import EventletPool

from petiole import Petiole
from petiole.errors import SoftTimeLimitExceeded
from petiole.execution import TaskRunner
from petiole.pools.base import ACK, TIME_LIMIT, Job, Pool
from petiole.testing.pool_suite import Outcomes, PoolSuite, make_job

if missing_patches():
    raise RuntimeError("run this file with run_patched.py: the process is not patched")


class TestEventletPoolConformance(PoolSuite):
    can_interrupt = True  # a green thread can be killed

    @pytest.fixture
    def pool(self) -> Pool:
        return EventletPool(20)


# -- the pool's own behaviour, on an app that stores results in memory ------------------

app = Petiole(
    "eventlet-pool-tests",
    broker="memory://eventlet-pool-tests",
    backend="memory://eventlet-pool-tests",
    config_file=os.devnull,
)


@app.task(name="eventlet_tests.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="eventlet_tests.wait_on_socket")
def wait_on_socket(seconds: float) -> str:
    """Wait for data that never comes, as a slow server would keep a task waiting."""
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(seconds)
        try:
            left.recv(1)
        except TimeoutError:
            return "timed out"
    return "data"


@app.task(name="eventlet_tests.clean_up_on_soft_limit")
def clean_up_on_soft_limit(seconds: float) -> str:
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "finished"


@app.task(name="eventlet_tests.ignore_soft_limit")
def ignore_soft_limit(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(SoftTimeLimitExceeded):
            time.sleep(0.02)
    return "finished"


def job(task: str, *args: Any, soft_s: float | None = None, hard_s: float | None = None) -> Job:
    return dataclasses.replace(make_job(task, *args), soft_time_limit_s=soft_s, time_limit_s=hard_s)


@pytest.fixture
def pool() -> Any:
    pool = EventletPool(200)
    pool.start(TaskRunner(app, hostname="eventlet-tests"))
    yield pool
    pool.terminate()


def run_all(pool: EventletPool, jobs: list[Job], timeout_s: float = 20) -> tuple[Outcomes, float]:
    outcomes = Outcomes()
    started = time.monotonic()
    for each in jobs:
        pool.submit(each, outcomes)
    outcomes.wait_for(len(jobs), timeout_s=timeout_s)
    return outcomes, time.monotonic() - started


def result_of(each: Job) -> Any:
    return app.AsyncResult(each.envelope.task_id).get(timeout=5, propagate=False)


def test_the_process_runs_on_eventlets_socket_and_sleep() -> None:
    assert socket.socket is eventlet.green.socket.socket
    assert time.sleep is eventlet.sleep


def test_tasks_blocked_in_sleep_run_side_by_side(pool: EventletPool) -> None:
    jobs = [job("eventlet_tests.sleep", 0.2) for _ in range(200)]
    outcomes, elapsed_s = run_all(pool, jobs)
    assert [o.state for _, o in outcomes.calls] == ["SUCCESS"] * 200
    assert elapsed_s < 3.0  # 40 s one after the other


def test_tasks_waiting_on_sockets_run_side_by_side(pool: EventletPool) -> None:
    jobs = [job("eventlet_tests.wait_on_socket", 0.2) for _ in range(200)]
    outcomes, elapsed_s = run_all(pool, jobs)
    assert [o.state for _, o in outcomes.calls] == ["SUCCESS"] * 200
    assert {result_of(each) for each in jobs} == {"timed out"}
    assert elapsed_s < 3.0


def test_soft_time_limit_is_raised_inside_the_task_which_can_clean_up(pool: EventletPool) -> None:
    limited = job("eventlet_tests.clean_up_on_soft_limit", 30, soft_s=0.2)
    outcomes, elapsed_s = run_all(pool, [limited])
    assert [o.state for o in outcomes.of(limited)] == ["SUCCESS"]
    assert result_of(limited) == "cleaned up"
    assert elapsed_s < 3.0


def test_an_uncaught_soft_time_limit_fails_only_its_own_task(pool: EventletPool) -> None:
    limited = job("eventlet_tests.sleep", 30, soft_s=0.2)
    other = job("eventlet_tests.sleep", 0.5)
    outcomes, elapsed_s = run_all(pool, [limited, other])
    assert [o.state for o in outcomes.of(limited)] == ["FAILURE"]
    assert isinstance(result_of(limited), SoftTimeLimitExceeded)
    assert result_of(other) == 0.5
    assert elapsed_s < 3.0


def test_hard_time_limit_stops_a_task_that_ignores_the_soft_one(pool: EventletPool) -> None:
    stubborn = job("eventlet_tests.ignore_soft_limit", 30, soft_s=0.1, hard_s=0.4)
    outcomes, elapsed_s = run_all(pool, [stubborn])
    [outcome] = outcomes.of(stubborn)
    assert outcome.kind == TIME_LIMIT
    assert "0.4 s" in outcome.reason
    assert elapsed_s < 3.0


def test_cancel_stops_a_running_task_and_reports_it_revoked(pool: EventletPool) -> None:
    running = job("eventlet_tests.sleep", 30)
    outcomes = Outcomes()
    pool.submit(running, outcomes)
    eventlet.sleep(0.1)
    assert pool.cancel(running.receipt) is True
    [(_, outcome)] = outcomes.wait_for(1, timeout_s=5)
    assert (outcome.kind, outcome.state) == (ACK, "REVOKED")
    assert pool.cancel(running.receipt) is False  # no longer running


def test_cancel_leaves_a_job_that_has_not_begun_to_run_and_report(pool: Any) -> None:
    queued = job("eventlet_tests.sleep", 0.1)
    outcomes = Outcomes()
    pool.submit(queued, outcomes)
    assert pool.cancel(queued.receipt) is False  # we have not yielded: it has not begun
    outcomes.wait_for(1, timeout_s=5)
    assert [o.state for o in outcomes.of(queued)] == ["SUCCESS"]
