"""The processes pool with jobs queued in its children (``queue_depth``): what a
queued job may rely on — revocation checked when it starts, time limits counted
from its start, never lost with its child, given back on stop — and recycling."""

from __future__ import annotations

import dataclasses
import multiprocessing
import pickle
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole.execution import TaskRunner
from petiole.loading import load_app
from petiole.pools.base import ACK, LOST, REQUEUE, TIME_LIMIT, Job, Outcome
from petiole.pools.processes import _READ_SIZE, ProcessPool, _Frames, _send
from petiole.testing import pool_app, wait_until
from petiole.testing.pool_suite import Outcomes, make_job

JOB_TIMEOUT_S = 20.0


def start(pool: ProcessPool, app_path: str = pool_app.APP_PATH) -> ProcessPool:
    app = pool_app.app if app_path == pool_app.APP_PATH else load_app(app_path)
    pool.start(TaskRunner(app, hostname="test-processes-pool"))
    return pool


@pytest.fixture
def one_child() -> Iterator[ProcessPool]:
    pool = start(ProcessPool(1))
    yield pool
    pool.terminate()
    pool.stop(timeout_s=5)


def blocking_job(folder: Path, name: str = "b") -> Job:
    return make_job("pool_suite.block", str(folder), name, JOB_TIMEOUT_S)


def started(folder: Path, name: str = "b") -> bool:
    return wait_until(lambda: (folder / f"{name}.started").exists(), timeout_s=JOB_TIMEOUT_S)


def release(folder: Path) -> None:
    (folder / "release").touch()


def with_time_limit(job: Job, time_limit_s: float) -> Job:
    return dataclasses.replace(job, time_limit_s=time_limit_s)


def test_a_child_holds_queue_depth_jobs_and_runs_them_one_after_another(
    one_child: ProcessPool, tmp_path: Path
) -> None:
    outcomes = Outcomes()
    assert one_child.queue_depth >= 2
    block = blocking_job(tmp_path)
    touch = make_job("pool_suite.touch", str(tmp_path), "next")
    one_child.submit(block, outcomes)
    one_child.submit(touch, outcomes)
    assert started(tmp_path)
    assert not (tmp_path / "next").exists()  # queued behind the running job, not beside it
    release(tmp_path)
    outcomes.wait_for(2)
    assert [o.state for o in outcomes.of(block) + outcomes.of(touch)] == ["SUCCESS", "SUCCESS"]
    assert (tmp_path / "next").read_text() == (tmp_path / "b.started").read_text()  # same child


def test_cancel_withdraws_a_job_queued_in_a_child_without_touching_the_running_one(
    one_child: ProcessPool, tmp_path: Path
) -> None:
    outcomes = Outcomes()
    block = blocking_job(tmp_path)
    queued = make_job("pool_suite.touch", str(tmp_path), "never")
    one_child.submit(block, outcomes)
    one_child.submit(queued, outcomes)
    assert started(tmp_path)
    assert one_child.cancel(queued.receipt) is True
    release(tmp_path)
    outcomes.wait_for(2)
    assert [(o.kind, o.state) for o in outcomes.of(queued)] == [(ACK, "REVOKED")]
    assert [o.state for o in outcomes.of(block)] == ["SUCCESS"]
    assert not (tmp_path / "never").exists()


def test_a_child_that_dies_loses_only_its_running_job_its_queued_one_runs_on_the_next(
    one_child: ProcessPool, tmp_path: Path
) -> None:
    outcomes = Outcomes()
    crash = make_job("pool_suite.crash")
    queued = make_job("pool_suite.touch", str(tmp_path), "after")
    one_child.submit(crash, outcomes)
    one_child.submit(queued, outcomes)
    outcomes.wait_for(2)
    [lost] = outcomes.of(crash)
    assert lost.kind == LOST
    assert [o.state for o in outcomes.of(queued)] == ["SUCCESS"]


def test_a_job_killed_at_its_hard_time_limit_gives_its_queued_job_to_a_new_child(
    one_child: ProcessPool, tmp_path: Path
) -> None:
    outcomes = Outcomes()
    limited = with_time_limit(blocking_job(tmp_path), 0.3)
    queued = make_job("pool_suite.touch", str(tmp_path), "after")
    one_child.submit(limited, outcomes)
    one_child.submit(queued, outcomes)
    outcomes.wait_for(2)
    [killed] = outcomes.of(limited)
    assert killed.kind == TIME_LIMIT
    assert [o.state for o in outcomes.of(queued)] == ["SUCCESS"]
    assert (tmp_path / "after").read_text() != (tmp_path / "b.started").read_text()


def test_the_hard_time_limit_of_a_queued_job_counts_from_when_it_starts(
    one_child: ProcessPool, tmp_path: Path
) -> None:
    outcomes = Outcomes()
    block = blocking_job(tmp_path)
    queued = with_time_limit(make_job("pool_suite.touch", str(tmp_path), "after"), 0.2)
    one_child.submit(block, outcomes)
    one_child.submit(queued, outcomes)
    assert started(tmp_path)
    # The queued job waits longer than its own limit: counted from being sent, it
    # would have the child (and the running job with it) killed meanwhile.
    time.sleep(0.6)
    release(tmp_path)
    outcomes.wait_for(2)
    assert [o.state for o in outcomes.of(block)] == ["SUCCESS"]
    assert [o.state for o in outcomes.of(queued)] == ["SUCCESS"]


def test_a_child_recycled_after_max_tasks_gives_back_its_queued_jobs_unrun(
    tmp_path: Path,
) -> None:
    settings = dataclasses.replace(pool_app.app.settings, max_tasks_per_child=2)
    pool = start(ProcessPool(1, settings))
    try:
        outcomes = Outcomes()
        jobs = [make_job("pool_suite.touch", str(tmp_path), f"job-{i}") for i in range(6)]
        for job in jobs:  # more than the child holds: the rest wait in the pool
            pool.submit(job, outcomes)
        outcomes.wait_for(len(jobs))
    finally:
        pool.terminate()
        pool.stop(timeout_s=5)
    assert [o.state for job in jobs for o in outcomes.of(job)] == ["SUCCESS"] * 6
    pids = [(tmp_path / f"job-{i}").read_text() for i in range(6)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5]


def test_stop_lets_the_running_job_finish_and_gives_back_the_queued_one(
    tmp_path: Path,
) -> None:
    pool = start(ProcessPool(1))
    outcomes = Outcomes()
    block = blocking_job(tmp_path)
    queued = make_job("pool_suite.touch", str(tmp_path), "never")
    pool.submit(block, outcomes)
    pool.submit(queued, outcomes)
    assert started(tmp_path)
    result: list[bool] = []
    stopper = threading.Thread(target=lambda: result.append(pool.stop(timeout_s=JOB_TIMEOUT_S)))
    stopper.start()
    release(tmp_path)
    stopper.join(JOB_TIMEOUT_S + 10)
    assert result == [True]
    assert [o.state for o in outcomes.of(block)] == ["SUCCESS"]
    assert [o.kind for o in outcomes.of(queued)] == [REQUEUE]
    assert not (tmp_path / "never").exists()


# -- revocation, through a store the child shares with the test ------------------------

REVOKE_APP = """
import os
from petiole import Petiole
from petiole.testing.pool_app import block, touch  # noqa: F401  (registers nothing here)

app = Petiole("processes-revoke", broker=os.environ["PROCESSES_POOL_TEST_URL"],
              backend=os.environ["PROCESSES_POOL_TEST_URL"], config_file=os.devnull)
app.main_path = "processes_revoke_app:app"
app.task(name="pool_suite.block")(block.fn)
app.task(name="pool_suite.touch")(touch.fn)
"""


@pytest.fixture
def revoke_app_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An app on a SQLite file, importable by path in the pool's children."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "processes_revoke_app.py").write_text(REVOKE_APP)
    monkeypatch.setenv("PROCESSES_POOL_TEST_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.syspath_prepend(str(code))
    yield "processes_revoke_app:app"
    sys.modules.pop("processes_revoke_app", None)


def test_a_job_revoked_while_queued_in_a_child_is_reported_revoked_and_never_runs(
    revoke_app_path: str, tmp_path: Path
) -> None:
    app = load_app(revoke_app_path)
    # A revocation exists before the child starts, so its watch is active from its
    # first job (as a worker's is, read once a second, when the first one appears).
    app.revoke(["an-earlier-task"])
    pool = start(ProcessPool(1), revoke_app_path)
    try:
        outcomes = Outcomes()
        block = blocking_job(tmp_path)
        queued = make_job("pool_suite.touch", str(tmp_path), "never")
        pool.submit(block, outcomes)
        pool.submit(queued, outcomes)
        assert started(tmp_path)
        app.revoke([queued.envelope.task_id])
        release(tmp_path)
        outcomes.wait_for(2)
    finally:
        pool.terminate()
        pool.stop(timeout_s=5)
        app.close()
    [revoked] = outcomes.of(queued)
    assert (revoked.kind, revoked.state, revoked.cause) == (ACK, "REVOKED", "revoked")
    assert [o.state for o in outcomes.of(block)] == ["SUCCESS"]
    assert not (tmp_path / "never").exists()


def test_outcomes_cross_the_pipe_whole(one_child: ProcessPool) -> None:
    outcomes = Outcomes()
    job = make_job("pool_suite.fail")
    one_child.submit(job, outcomes)
    outcomes.wait_for(1)
    [outcome] = outcomes.of(job)
    assert isinstance(outcome, Outcome)
    assert (outcome.kind, outcome.state) == (ACK, "FAILURE")
    assert outcome.runtime_s > 0


def test_one_read_takes_every_report_waiting_and_large_ones_arrive_whole() -> None:
    # The worker's side of a child's pipe (a real one): reports sent while nobody
    # read come out together, in order; one larger than a read is reassembled.
    ours, theirs = multiprocessing.Pipe()
    frames = _Frames(ours)
    try:
        for i in range(5):
            _send(theirs, [("report", i)])
        assert frames.wait(timeout_s=JOB_TIMEOUT_S)
        assert frames.take() == [[("report", i)] for i in range(5)]
        assert frames.read_ready() == []  # nothing more has arrived

        large = b"x" * (_READ_SIZE * 5 + 3)
        writer = threading.Thread(target=_send, args=(theirs, ("large", large)))
        writer.start()  # the pipe's buffer is smaller: the writer waits for our reads
        assert frames.wait(timeout_s=JOB_TIMEOUT_S)
        writer.join(JOB_TIMEOUT_S)
        assert frames.take() == [("large", large)]
        # recv_bytes (how a child's first report is read) reads the same framing.
        _send(theirs, ("ready", 1))
        assert pickle.loads(ours.recv_bytes()) == ("ready", 1)
        theirs.close()
        with pytest.raises(EOFError):
            frames.wait(timeout_s=JOB_TIMEOUT_S)
    finally:
        ours.close()
        theirs.close()


def test_jobs_submitted_in_a_batch_reach_the_child_together_when_the_batch_ends(
    one_child: ProcessPool, tmp_path: Path
) -> None:
    outcomes = Outcomes()
    block = blocking_job(tmp_path)
    one_child.submit(block, outcomes)
    assert started(tmp_path)
    [slot] = one_child._slots
    queued = [
        make_job("pool_suite.touch", str(tmp_path), f"queued-{i}")
        for i in range(one_child.queue_depth - 1)
    ]
    with one_child.batch():
        for job in queued:
            one_child.submit(job, outcomes)
        assert len(slot.held) == 1  # none sent yet: only the running job is in the child
    # Sent at the end, together: the child's every place is taken.
    assert len(slot.held) == one_child.queue_depth
    release(tmp_path)
    outcomes.wait_for(len(queued) + 1)
    assert [o.state for job in [block, *queued] for o in outcomes.of(job)] == ["SUCCESS"] * (
        len(queued) + 1
    )
    # All ran on the one child (each leaves its pid).
    stamps = [(tmp_path / f"queued-{i}").read_text() for i in range(len(queued))]
    assert len(set(stamps)) == 1
