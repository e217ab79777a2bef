"""Hard time limits, recycling, lost children and revoke-terminate on the processes pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import loaded_app

from petiole import Petiole, states
from petiole.errors import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker

pytestmark = pytest.mark.slow


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Petiole]:
    with loaded_app("semantics_app", f"sqlite:///{tmp_path / 'p.db'}", monkeypatch) as app:
        yield app


def test_hard_time_limit_kills_the_child_and_fails_the_task(app: Petiole) -> None:
    sleep, pid = app.tasks["sem.sleep"], app.tasks["sem.pid"]
    with start_worker(app, pool="processes", concurrency=1):
        before = pid.delay().get(timeout=30)
        result = sleep.apply_async((60,), time_limit_s=0.5)
        with pytest.raises(TimeLimitExceeded, match=r"time limit of 0\.5 s"):
            result.get(timeout=30)
        after = pid.delay().get(timeout=30)
    assert result.state == states.FAILURE
    assert after != before  # the killed child was replaced


def test_soft_time_limit_interrupts_a_blocking_call_in_a_child(app: Petiole) -> None:
    with start_worker(app, pool="processes", concurrency=1):
        cleaned = app.tasks["sem.sleep_and_clean_up"].apply_async((60,), soft_time_limit_s=0.3)
        assert cleaned.get(timeout=30) == "cleaned up"
        plain = app.tasks["sem.sleep"].apply_async((60,), soft_time_limit_s=0.3)
        with pytest.raises(SoftTimeLimitExceeded):
            plain.get(timeout=30)


def test_child_is_replaced_after_max_tasks_per_child(app: Petiole) -> None:
    app.configure(max_tasks_per_child=2)
    pid = app.tasks["sem.pid"]
    with start_worker(app, pool="processes", concurrency=1):
        pids = [pid.delay().get(timeout=30) for _ in range(6)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5]


def test_child_is_replaced_when_it_grows_past_max_memory(app: Petiole) -> None:
    app.configure(max_memory_per_child_mb=200)
    allocate, pid = app.tasks["sem.allocate"], app.tasks["sem.pid"]
    with start_worker(app, pool="processes", concurrency=1):
        small = pid.delay().get(timeout=30)
        assert pid.delay().get(timeout=30) == small  # a small child is kept
        grown = allocate.delay(300).get(timeout=30)
        assert grown == small
        assert pid.delay().get(timeout=30) != grown


def test_a_lost_child_fails_the_task_when_reject_on_worker_lost_is_off(app: Petiole) -> None:
    app.configure(reject_on_worker_lost=False)
    with start_worker(app, pool="processes", concurrency=1):
        result = app.tasks["sem.exit"].delay()
        with pytest.raises(WorkerLostError, match="exit code 7"):
            result.get(timeout=30)
        assert app.tasks["sem.pid"].delay().get(timeout=30) > 0


def test_revoke_with_terminate_stops_a_running_task(app: Petiole) -> None:
    sleep, pid = app.tasks["sem.sleep"], app.tasks["sem.pid"]
    with start_worker(app, pool="processes", concurrency=1) as worker:
        running = sleep.delay(60)
        assert wait_until(lambda: worker.held_count() == 1 and worker._running, timeout_s=30)
        running.revoke(terminate=True)
        assert wait_until(lambda: worker.counts["revoked"] == 1, timeout_s=15)
        assert pid.delay().get(timeout=30) > 0
    assert running.state == states.REVOKED
