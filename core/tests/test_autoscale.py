"""Autoscaling: the pool grows while work waits and shrinks back once executors
stay idle, between the bounds of ``--autoscale MAX,MIN``; the prefetch follows."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from core_helpers import importable_app

from petiole import Petiole
from petiole.envelope import Envelope
from petiole.errors import ConfigError
from petiole.pools.base import Job, Outcome, Resizable
from petiole.pools.processes import ProcessPool
from petiole.pools.threads import ThreadPool
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker
from petiole.worker import Worker
from petiole.worker.autoscale import Bounds, ScalePolicy

# -- the policy, on a clock of our own -----------------------------------------------------


def test_the_policy_grows_at_once_to_the_demand_up_to_max() -> None:
    policy = ScalePolicy(Bounds(maximum=4, minimum=1), idle_s=30, now=0.0)
    assert policy.size_for(demand=3, current=1, now=1.0) == 3
    assert policy.size_for(demand=20, current=3, now=2.0) == 4


def test_the_policy_shrinks_only_after_executors_stayed_idle_for_idle_s() -> None:
    policy = ScalePolicy(Bounds(maximum=4, minimum=1), idle_s=10, now=0.0)
    assert policy.size_for(demand=4, current=4, now=1.0) == 4
    assert policy.size_for(demand=2, current=4, now=2.0) == 4  # busy 1 s ago
    assert policy.size_for(demand=2, current=4, now=10.5) == 4  # still within 10 s
    assert policy.size_for(demand=2, current=4, now=11.5) == 2  # idle for 10 s: two go
    assert policy.size_for(demand=0, current=2, now=12.5) == 2
    assert policy.size_for(demand=0, current=2, now=22.0) == 1  # never below MIN


def test_the_policy_does_not_shrink_before_it_watched_for_idle_s() -> None:
    policy = ScalePolicy(Bounds(maximum=4, minimum=1), idle_s=10, now=0.0)
    assert policy.size_for(demand=0, current=3, now=5.0) == 3
    assert policy.size_for(demand=0, current=3, now=10.0) == 1


@pytest.mark.parametrize(
    ("text", "bounds"),
    [("10,3", (10, 3)), ("3,10", (10, 3)), ("10", (10, 1)), ("10,0", (10, 1)), (" 4 , 2", (4, 2))],
)
def test_autoscale_is_read_as_celery_reads_it(text: str, bounds: tuple[int, int]) -> None:
    parsed = Bounds.parse(text)
    assert (parsed.maximum, parsed.minimum) == bounds


@pytest.mark.parametrize("text", ["", "a,b", "1,2,3", "-1,2", "4;2"])
def test_autoscale_that_is_not_max_min_is_a_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match="expected MAX,MIN"):
        Bounds.parse(text)


# -- pools that resize -----------------------------------------------------------------------


class _Blocking:
    """A runner whose jobs wait for ``release``."""

    def __init__(self) -> None:
        self.app_path: str | None = None
        self.hostname = "test"
        self.release = threading.Event()
        self.started = threading.Semaphore(0)

    def run(self, job: Job) -> Outcome:
        self.started.release()
        self.release.wait(10)
        return Outcome("ack", "SUCCESS")


def _job(name: str) -> Job:
    return Job(Envelope({"id": name, "task": "t"}, b"", "application/json"), "q", 1, name)


def test_both_builtin_pools_that_can_resize_say_so() -> None:
    assert isinstance(ThreadPool(1), Resizable)
    assert isinstance(ProcessPool(1), Resizable)


def test_a_shrinking_threads_pool_retires_idle_threads_now_and_busy_ones_after_their_job() -> None:
    runner = _Blocking()
    pool = ThreadPool(3)
    pool.start(runner)
    done: list[str] = []
    try:
        for name in ("a", "b"):
            pool.submit(_job(name), lambda job, outcome: done.append(job.receipt))
        for _ in range(2):
            assert runner.started.acquire(timeout=5)
        pool.resize(1)
        assert pool.concurrency == 1
        assert wait_until(lambda: pool.size() == 2, timeout_s=5)  # the idle one went
        runner.release.set()
        assert wait_until(lambda: sorted(done) == ["a", "b"], timeout_s=5)  # none cut short
        assert wait_until(lambda: pool.size() == 1, timeout_s=5)
        pool.resize(3)
        assert (pool.concurrency, pool.size()) == (3, 3)
    finally:
        runner.release.set()
        assert pool.stop(timeout_s=5)


# -- a worker that autoscales ----------------------------------------------------------------


@pytest.fixture(params=["pushed", "reserved"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Petiole]:
    store = f"memory://{uuid.uuid4().hex}"
    broker = store if request.param == "pushed" else f"sqlite:///{tmp_path / 'broker.db'}"
    app = Petiole("test", broker=broker, backend=store, config_file="/dev/null")
    yield app
    app.close()


def test_a_threads_worker_grows_while_tasks_wait_and_shrinks_back_when_idle(app: Petiole) -> None:
    release = threading.Event()
    running, most = [0], [0]
    lock = threading.Lock()

    @app.task
    def slow() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(20)
        with lock:
            running[0] -= 1

    # Queued before the worker starts: its first reserve takes a full window, so how
    # much it holds next depends on the pool's growth, not on when each send lands.
    results = [slow.delay() for _ in range(20)]
    with start_worker(app, autoscale=(4, 1), autoscale_idle_s=1.0) as worker:
        assert (worker.concurrency, worker.prefetch) == (1, 4)
        assert wait_until(lambda: worker.pool.concurrency == 4, timeout_s=10)
        assert wait_until(lambda: most[0] == 4, timeout_s=5)
        assert (worker.concurrency, worker.prefetch) == (4, 16)  # prefetch follows,
        # and the broker with it (a push consumer's new window comes on top of what the
        # old one delivered, for as long as those are unsettled).
        assert wait_until(lambda: worker.held_count() >= 16, timeout_s=5)
        release.set()
        for result in results:
            result.get(timeout=10)
        assert wait_until(lambda: worker.pool.concurrency == 1, timeout_s=10)
        assert wait_until(lambda: worker.pool.size() == 1, timeout_s=5)
        assert (worker.concurrency, worker.prefetch) == (1, 4)
    assert most[0] == 4  # never more than MAX at once


SLOW_APP = """
import time
from pathlib import Path

from petiole import Petiole

app = Petiole("autoscale-children")


@app.task(name="autoscale.wait_for")
def wait_for(path):
    deadline = time.monotonic() + 20
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
"""


@pytest.fixture
def slow_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Petiole]:
    with importable_app(SLOW_APP, tmp_path, monkeypatch, prefix="autoscale_app") as app:
        yield app


def test_a_processes_worker_adds_children_for_waiting_work_and_retires_them_when_idle(
    slow_app: Petiole, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    wait_for = slow_app.tasks["autoscale.wait_for"]
    with start_worker(slow_app, pool="processes", autoscale=(3, 1), autoscale_idle_s=1.0) as worker:
        pool = worker.pool
        assert isinstance(pool, ProcessPool)
        results = [wait_for.delay(str(release)) for _ in range(6)]
        # The worker counts a resize once the pool returns from it, a moment after the
        # children show: wait for both, not one and then read the other.
        assert wait_until(
            lambda: len(pool.child_pids()) == 3 and worker.concurrency == 3, timeout_s=15
        ), (pool.child_pids(), worker.concurrency)
        release.touch()
        for result in results:
            result.get(timeout=15)
        assert wait_until(
            lambda: len(pool.child_pids()) == 1 and worker.concurrency == 1, timeout_s=10
        ), (pool.child_pids(), worker.concurrency)


def test_autoscale_with_a_pool_that_cannot_resize_names_those_that_can(app: Petiole) -> None:
    with pytest.raises(ConfigError, match="the solo pool cannot") as raised:
        Worker(app, pool="solo", autoscale=(4, 1))
    assert "pools that can: processes, threads" in str(raised.value)
