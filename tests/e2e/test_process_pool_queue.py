"""The processes pool's queued job: each child holds the next job beside the one it
runs. A queued job that never started is returned (``requeue``), never lost and
never run after the worker said stop."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole.execution import TaskRunner
from petiole.pools.base import ACK, LOST, REQUEUE, TIME_LIMIT, Job
from petiole.pools.processes import ProcessPool
from petiole.testing import pool_app
from petiole.testing._helpers import wait_until
from petiole.testing.pool_suite import Outcomes, make_job

pytestmark = pytest.mark.slow


@pytest.fixture
def pool() -> Iterator[ProcessPool]:
    started = ProcessPool(1)
    started.start(TaskRunner(pool_app.app, hostname="queue-tests"))
    yield started
    started.terminate()
    started.stop(timeout_s=5)


def blocker(folder: Path, name: str = "b") -> tuple[Job, Path]:
    return make_job("pool_suite.block", str(folder), name, 20.0), folder / f"{name}.started"


def test_a_child_takes_the_next_job_while_it_runs_one(pool: ProcessPool, tmp_path: Path) -> None:
    assert pool.capacity == 2
    running, started = blocker(tmp_path)
    queued = make_job("pool_suite.touch", str(tmp_path), "next")
    outcomes = Outcomes()
    pool.submit(running, outcomes)
    pool.submit(queued, outcomes)
    assert wait_until(started.exists, timeout_s=20)
    assert wait_until(lambda: len(pool._slots[0].inflight) == 2, timeout_s=5)

    (tmp_path / "release").touch()
    outcomes.wait_for(2)

    assert [o.kind for _, o in outcomes.calls] == [ACK, ACK]
    assert (tmp_path / "next").exists()


def test_stop_returns_the_queued_job_unstarted_and_lets_the_running_one_finish(
    pool: ProcessPool, tmp_path: Path
) -> None:
    running, started = blocker(tmp_path)
    queued = make_job("pool_suite.touch", str(tmp_path), "never")
    outcomes = Outcomes()
    pool.submit(running, outcomes)
    pool.submit(queued, outcomes)
    assert wait_until(started.exists, timeout_s=20)
    assert wait_until(lambda: len(pool._slots[0].inflight) == 2, timeout_s=5)

    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(pool.stop(timeout_s=20)))
    stopper.start()
    assert wait_until(pool._stopping.is_set, timeout_s=5)  # before the running job ends
    (tmp_path / "release").touch()
    stopper.join(30)
    assert stopped == [True]

    assert [o.kind for o in outcomes.of(running)] == [ACK]
    [returned] = outcomes.of(queued)
    assert returned.kind == REQUEUE
    assert "not started: the worker is stopping" in returned.reason
    assert not (tmp_path / "never").exists()


def test_a_dying_child_loses_its_job_and_returns_the_queued_one(
    pool: ProcessPool, tmp_path: Path
) -> None:
    crash = make_job("pool_suite.crash")
    queued = make_job("pool_suite.touch", str(tmp_path), "after")
    outcomes = Outcomes()
    pool.submit(crash, outcomes)
    pool.submit(queued, outcomes)
    outcomes.wait_for(2)

    [lost] = outcomes.of(crash)
    assert lost.kind == LOST
    [returned] = outcomes.of(queued)
    assert returned.kind == REQUEUE
    assert "its pool child was replaced" in returned.reason
    # The replacement child serves the next job.
    again = make_job("pool_suite.touch", str(tmp_path), "again")
    pool.submit(again, outcomes)
    outcomes.wait_for(3)
    assert (tmp_path / "again").exists()


def test_a_time_limit_kill_returns_the_queued_job(pool: ProcessPool, tmp_path: Path) -> None:
    running, _ = blocker(tmp_path)
    limited = dataclasses.replace(running, time_limit_s=0.5)
    queued = make_job("pool_suite.touch", str(tmp_path), "queued")
    outcomes = Outcomes()
    pool.submit(limited, outcomes)
    pool.submit(queued, outcomes)
    outcomes.wait_for(2)

    assert [o.kind for o in outcomes.of(limited)] == [TIME_LIMIT]
    assert [o.kind for o in outcomes.of(queued)] == [REQUEUE]


def test_revoking_a_queued_job_with_terminate_stops_it_when_it_starts(
    pool: ProcessPool, tmp_path: Path
) -> None:
    running, started = blocker(tmp_path)
    # Blocks on a release of its own that never comes: only a kill ends it early.
    (tmp_path / "q").mkdir()
    queued, _ = blocker(tmp_path / "q", "q")
    outcomes = Outcomes()
    pool.submit(running, outcomes)
    pool.submit(queued, outcomes)
    assert wait_until(started.exists, timeout_s=20)
    assert wait_until(lambda: len(pool._slots[0].inflight) == 2, timeout_s=5)

    assert pool.cancel(queued.receipt) is True
    (tmp_path / "release").touch()
    outcomes.wait_for(2)

    assert [o.kind for o in outcomes.of(running)] == [ACK]
    [revoked] = outcomes.of(queued)
    assert (revoked.kind, revoked.state) == (ACK, "REVOKED")
