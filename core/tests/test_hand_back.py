"""An inline pool holds a prefetch's worth of messages only while its tasks are
short: what waits behind a task that may run long goes back to the queue, for
another worker (process) to run meanwhile (docs/worker.md, "Prefetch")."""

from __future__ import annotations

import threading
from pathlib import Path

from petiole import Petiole
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker


def _app(tmp_path: Path) -> tuple[Petiole, threading.Event, threading.Event]:
    app = Petiole("handback", broker=f"sqlite:///{tmp_path / 'p.db'}", backend="memory://")
    started, release = threading.Event(), threading.Event()

    @app.task(name="quick")
    def quick(i: int) -> int:
        return i

    @app.task(name="blocker")
    def blocker() -> str:
        started.set()
        release.wait(30)
        return "done"

    return app, started, release


def test_what_waits_behind_a_task_that_may_run_long_runs_elsewhere_meanwhile(
    tmp_path: Path,
) -> None:
    app, started, release = _app(tmp_path)
    quick, blocker = app.tasks["quick"], app.tasks["blocker"]
    with start_worker(app, pool="solo", concurrency=1, prefetch_multiplier=8) as first:
        assert quick.delay(0).get(timeout=10) == 0  # known short: it reserves batches
        with app.sending_in_batches():
            held = blocker.delay()
            rest = [quick.delay(i) for i in range(1, 6)]
        # Reserved with the blocker, the five went back to the queue as it started.
        assert started.wait(10)
        assert wait_until(lambda: first.counts["handed_back"] == 5, timeout_s=10)
        with start_worker(app, pool="solo", concurrency=1) as second:
            assert [r.get(timeout=10) for r in rest] == [1, 2, 3, 4, 5]
            assert not held.ready()
        release.set()
        assert held.get(timeout=10) == "done"
    assert second.counts["success"] == 5


def test_a_worker_that_ran_nothing_yet_reserves_one_message(tmp_path: Path) -> None:
    app, started, release = _app(tmp_path)
    quick, blocker = app.tasks["quick"], app.tasks["blocker"]
    held = blocker.delay()
    rest = [quick.delay(i) for i in range(5)]
    with start_worker(app, pool="solo", concurrency=1, prefetch_multiplier=8) as first:
        assert started.wait(10)
        with start_worker(app, pool="solo", concurrency=1) as second:
            assert [r.get(timeout=10) for r in rest] == [0, 1, 2, 3, 4]
        release.set()
        assert held.get(timeout=10) == "done"
    assert second.counts["success"] == 5
    assert first.counts["handed_back"] == 0  # it reserved the blocker alone
