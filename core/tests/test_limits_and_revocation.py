"""Time limits (threads and solo pools), rate limits, revocation and the asyncio pool,
on an in-memory app in this process."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from pathlib import Path

import pytest

from petiole import Petiole, ResultSet, states
from petiole.errors import SoftTimeLimitExceeded, TaskRevoked
from petiole.logs import TASK_LOGGER
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_soft_time_limit_raises_inside_the_task(app: Petiole, pool: str) -> None:
    @app.task(soft_time_limit_s=0.2)
    def busy() -> str:
        try:
            while True:  # Python-level work: the limit is delivered between bytecodes
                time.sleep(0.01)
        except SoftTimeLimitExceeded:
            return "cleaned up"

    with start_worker(app, pool=pool):
        assert busy.delay().get(timeout=10) == "cleaned up"


def test_uncaught_soft_time_limit_fails_the_task(app: Petiole) -> None:
    @app.task
    def forever() -> None:
        while True:
            time.sleep(0.01)

    with start_worker(app):
        result = forever.apply_async(soft_time_limit_s=0.2)
        with pytest.raises(SoftTimeLimitExceeded):
            result.get(timeout=10)


def test_soft_time_limit_does_not_fire_after_the_task_returned(app: Petiole) -> None:
    @app.task(soft_time_limit_s=0.3)
    def quick() -> str:
        return "done"

    with start_worker(app) as worker:
        assert [quick.delay().get(timeout=10) for _ in range(3)] == ["done"] * 3
        # Outlive the limit in the same pool threads: nothing may be raised there later.
        done = threading.Event()
        threading.Timer(0.5, done.set).start()
        assert done.wait(2)
        assert quick.delay().get(timeout=10) == "done"
    assert worker.counts["failure"] == 0


def test_rate_limit_spaces_the_starts_of_one_task_type(app: Petiole) -> None:
    starts: list[float] = []

    @app.task(rate_limit="20/s")
    def limited() -> None:
        starts.append(time.monotonic())

    @app.task
    def free() -> str:
        return "free"

    with start_worker(app, concurrency=4):
        results = [limited.delay() for _ in range(6)]
        # Other task types are not held back by the limited one.
        assert free.delay().get(timeout=5) == "free"
        for r in results:
            r.get(timeout=10)
    starts.sort()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.04  # 20/s: one start every 0.05 s, within timer slack


def test_rate_limited_tasks_deferred_twice_still_start_under_solo(tmp_path: Path) -> None:
    # A reserving transport (SQLite) and a pool that runs the task on the thread that
    # dispatches it: the wake-up timer runs the second start itself and defers the third
    # again, so that timer must arm the next one. Otherwise nothing dispatches before
    # the worker's next reserve returns, reserve_wait_s later (or never, while the
    # deferred messages fill its prefetch).
    store = f"sqlite:///{tmp_path / 'petiole.db'}"
    app = Petiole("test", broker=store, backend=store, config_file="/dev/null")

    @app.task(rate_limit="20/s")
    def limited(i: int) -> int:
        return i

    try:
        results = [limited.delay(i) for i in range(4)]
        with start_worker(app, pool="solo", concurrency=1, reserve_wait_s=3):
            assert ResultSet(results).get(timeout=2) == [0, 1, 2, 3]  # 20/s: 0.15 s
    finally:
        app.close()


def test_revoked_task_never_runs(app: Petiole, caplog: pytest.LogCaptureFixture) -> None:
    ran: list[int] = []

    @app.task(name="target")
    def target(i: int) -> None:
        ran.append(i)

    keep = target.delay(1)
    gone = target.delay(2)
    gone.revoke(reason="not needed")
    with caplog.at_level(logging.INFO, logger=TASK_LOGGER), start_worker(app) as worker:
        keep.get(timeout=10)
        assert wait_until(lambda: worker.counts["revoked"] == 1, timeout_s=5)
    assert ran == [1]
    assert f"task target[{gone.id}] revoked: not run" in caplog.text  # said at INFO
    assert gone.state == states.REVOKED
    with pytest.raises(TaskRevoked, match="not needed"):
        gone.get(timeout=1)
    assert app.transport.size("default") == 0


def test_revoking_a_finished_task_keeps_its_result(app: Petiole) -> None:
    @app.task
    def double(i: int) -> int:
        return 2 * i

    done = double.delay(21)
    with start_worker(app):
        assert done.get(timeout=10) == 42
    assert app.revoke([done.id, "never-sent"]) == {done.id: states.SUCCESS}
    again = app.AsyncResult(done.id)  # a fresh handle: read from the store
    assert (again.state, again.get(timeout=1)) == (states.SUCCESS, 42)
    assert app.AsyncResult("never-sent").state == states.REVOKED


def test_revoking_a_prefetched_task_stops_it_from_starting(app: Petiole) -> None:
    release = threading.Event()
    ran: list[str] = []

    @app.task
    def gate() -> None:
        release.wait(10)

    @app.task
    def victim() -> None:
        ran.append("victim")

    with start_worker(app, concurrency=1) as worker:
        gate.delay()
        later = victim.delay()
        assert wait_until(lambda: worker.held_count() == 2, timeout_s=5)
        later.revoke()
        # The worker learns of revocations within about a second.
        assert wait_until(lambda: worker.revocations.active, timeout_s=5)
        release.set()
        assert wait_until(lambda: worker.counts["revoked"] == 1, timeout_s=5)
    assert ran == []


def test_asyncio_pool_runs_async_tasks_concurrently(app: Petiole) -> None:
    arrived: list[int] = []

    @app.task
    async def meet(i: int, expected: int) -> int:
        arrived.append(i)
        # Only tasks running at the same time on the loop can all get past this.
        deadline = time.monotonic() + 10
        while len(arrived) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if len(arrived) < expected:
            raise TimeoutError(f"only {len(arrived)} of {expected} ran side by side")
        return i

    with start_worker(app, pool="asyncio", concurrency=50, prefetch_multiplier=1):
        results = [meet.delay(i, 50) for i in range(50)]
        assert sorted(r.get(timeout=20) for r in results) == list(range(50))


def test_asyncio_pool_cancels_a_task_at_its_time_limit(app: Petiole) -> None:
    cancelled = threading.Event()

    @app.task(soft_time_limit_s=0.2)
    async def hang() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with (
        start_worker(app, pool="asyncio", concurrency=2),
        pytest.raises(SoftTimeLimitExceeded, match=r"time limit of 0\.2 s"),
    ):
        hang.delay().get(timeout=10)
    assert cancelled.is_set()


def test_async_task_runs_on_a_synchronous_pool_too(app: Petiole) -> None:
    @app.task
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    with start_worker(app, pool="threads"):
        assert double.delay(21).get(timeout=10) == 42
