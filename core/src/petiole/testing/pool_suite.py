"""Conformance suite for pools (``petiole.pools.base.Pool``).

Subclass :class:`PoolSuite` and give a ``pool`` fixture returning a fresh,
unstarted pool; the suite starts it with a real :class:`TaskRunner` over the
tasks of :mod:`petiole.testing.pool_app` (importable by path, so pools that run
jobs in child processes can load it) and stops it after each test::

    class TestMyPool(PoolSuite):
        @pytest.fixture
        def pool(self):
            return MyPool(4)

Declare what the pool does with class attributes; the tests a flag implies run
only when it is set, and are skipped by name otherwise:

``runs_in_caller``
    ``submit`` runs the job before returning (the solo pool).
``isolates_crashes``
    A job that ends its process abruptly is reported as ``lost`` and the pool
    keeps serving (process pools).
``can_interrupt``
    ``terminate`` cuts running jobs short (process pools; threads cannot be killed).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from petiole.envelope import Envelope, task_headers
from petiole.execution import TaskRunner
from petiole.pools.base import ACK, LOST, Job, Outcome, Pool
from petiole.serializers import JsonSerializer
from petiole.testing import pool_app
from petiole.testing._helpers import wait_until

_JSON = JsonSerializer()


def make_job(task: str, *args: Any) -> Job:
    """A job for one of pool_app's tasks, as the worker would hand it over."""
    task_id = str(uuid.uuid4())
    headers = task_headers(task_id, task, sent_at=time.time())
    envelope = Envelope(headers, _JSON.dumps([list(args), {}]), _JSON.content_type)
    return Job(envelope, queue="pool-suite", delivery_count=1, receipt=task_id)


class Outcomes:
    """Collects ``on_done`` calls, and lets a test wait for them."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.calls: list[tuple[Job, Outcome]] = []

    def __call__(self, job: Job, outcome: Outcome) -> None:
        with self._changed:
            self.calls.append((job, outcome))
            self._changed.notify_all()

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[tuple[Job, Outcome]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.calls) >= count, timeout=timeout_s):
                raise AssertionError(f"{len(self.calls)} of {count} jobs reported in {timeout_s} s")
            return list(self.calls)

    def of(self, job: Job) -> list[Outcome]:
        with self._changed:
            return [outcome for done, outcome in self.calls if done.receipt == job.receipt]


class PoolSuite:
    runs_in_caller: ClassVar[bool] = False
    isolates_crashes: ClassVar[bool] = False
    can_interrupt: ClassVar[bool] = False
    #: How long a job may wait for its siblings or its release before failing.
    job_timeout_s: ClassVar[float] = 20.0

    @pytest.fixture
    def started(self, pool: Pool) -> Iterator[Pool]:
        pool.start(TaskRunner(pool_app.app, hostname="pool-suite"))
        yield pool
        pool.terminate()
        pool.stop(timeout_s=5)

    @pytest.fixture
    def folder(self, tmp_path: Path) -> str:
        return str(tmp_path)

    def submit(self, pool: Pool, job: Job, outcomes: Outcomes) -> None:
        if self.runs_in_caller:
            pool.submit(job, outcomes)
        else:
            # Submitting from another thread proves on_done may come from any thread.
            thread = threading.Thread(target=pool.submit, args=(job, outcomes))
            thread.start()
            thread.join(5)

    # -- every pool ------------------------------------------------------------------

    def test_job_outcome_is_reported_exactly_once(self, started: Pool, folder: str) -> None:
        outcomes = Outcomes()
        job = make_job("pool_suite.touch", folder, "one")
        self.submit(started, job, outcomes)
        outcomes.wait_for(1)
        assert (Path(folder) / "one").exists()
        [outcome] = outcomes.of(job)
        assert outcome.kind == ACK
        assert outcome.state == "SUCCESS"

    def test_task_exception_is_a_failure_outcome_not_a_pool_error(self, started: Pool) -> None:
        outcomes = Outcomes()
        job = make_job("pool_suite.fail")
        self.submit(started, job, outcomes)
        outcomes.wait_for(1)
        assert [o.state for o in outcomes.of(job)] == ["FAILURE"]

    def test_the_pool_keeps_serving_job_after_job(self, started: Pool, folder: str) -> None:
        outcomes = Outcomes()
        jobs = [make_job("pool_suite.touch", folder, f"job-{i}") for i in range(40)]
        for done, job in enumerate(jobs):
            # As the worker does: never more jobs in flight than the pool's concurrency.
            outcomes.wait_for(max(0, done - started.concurrency + 1))
            self.submit(started, job, outcomes)
        outcomes.wait_for(len(jobs))
        assert sorted(p.name for p in Path(folder).iterdir()) == sorted(
            f"job-{i}" for i in range(40)
        )
        assert all(len(outcomes.of(job)) == 1 for job in jobs)

    def test_concurrency_jobs_run_at_the_same_time(self, started: Pool, folder: str) -> None:
        if started.concurrency < 2:
            pytest.skip("concurrency is 1: nothing runs side by side")
        outcomes = Outcomes()
        count = started.concurrency
        for i in range(count):
            job = make_job("pool_suite.rendezvous", folder, f"r{i}", count, self.job_timeout_s)
            self.submit(started, job, outcomes)
        calls = outcomes.wait_for(count, timeout_s=self.job_timeout_s + 10)
        assert [o.state for _, o in calls] == ["SUCCESS"] * count

    # -- pools that run jobs outside the caller ------------------------------------------

    def require_background(self) -> None:
        if self.runs_in_caller:
            pytest.skip("runs_in_caller is set: submit runs the job before returning")

    def test_stop_lets_running_jobs_finish(self, started: Pool, folder: str) -> None:
        self.require_background()
        outcomes = Outcomes()
        job = make_job("pool_suite.block", folder, "b", self.job_timeout_s)
        self.submit(started, job, outcomes)
        assert wait_until(lambda: (Path(folder) / "b.started").exists(), timeout_s=20)
        result: list[bool] = []
        stopper = threading.Thread(target=lambda: result.append(started.stop(timeout_s=20)))
        stopper.start()
        (Path(folder) / "release").touch()
        stopper.join(30)
        assert result == [True]
        assert [o.state for o in outcomes.of(job)] == ["SUCCESS"]

    def test_stop_reports_a_job_that_outlasts_the_timeout(self, started: Pool, folder: str) -> None:
        self.require_background()
        outcomes = Outcomes()
        job = make_job("pool_suite.block", folder, "b", self.job_timeout_s)
        self.submit(started, job, outcomes)
        assert wait_until(lambda: (Path(folder) / "b.started").exists(), timeout_s=20)
        try:
            assert started.stop(timeout_s=0.2) is False
        finally:
            (Path(folder) / "release").touch()

    # -- isolation ----------------------------------------------------------------------------

    def test_a_job_that_kills_its_process_is_lost_and_the_pool_recovers(
        self, started: Pool, folder: str
    ) -> None:
        if not self.isolates_crashes:
            pytest.skip("isolates_crashes is not set: a crash would take the test process")
        outcomes = Outcomes()
        crash = make_job("pool_suite.crash")
        self.submit(started, crash, outcomes)
        outcomes.wait_for(1)
        [lost] = outcomes.of(crash)
        assert lost.kind == LOST
        assert "exit code 13" in lost.reason
        after = make_job("pool_suite.touch", folder, "after")
        self.submit(started, after, outcomes)
        outcomes.wait_for(2)
        assert [o.state for o in outcomes.of(after)] == ["SUCCESS"]

    def test_terminate_cuts_running_jobs_short_without_reporting_them(
        self, started: Pool, folder: str
    ) -> None:
        if not self.can_interrupt:
            pytest.skip("can_interrupt is not set: running jobs cannot be cut short")
        outcomes = Outcomes()
        job = make_job("pool_suite.block", folder, "b", self.job_timeout_s)
        self.submit(started, job, outcomes)
        assert wait_until(lambda: (Path(folder) / "b.started").exists(), timeout_s=20)
        started.terminate()
        (Path(folder) / "release").touch()
        # The job's process is gone: it can never report, however long we look.
        assert not wait_until(lambda: bool(outcomes.of(job)), timeout_s=1.0)
