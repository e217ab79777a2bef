"""``revoke(terminate=True)`` of a running task leaves REVOKED as its last state, even
when the task wrote a state of its own (``update_state``) after the revocation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from core_helpers import importable_app

from petiole import Petiole, states
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker

PROGRESS_APP = """
import time

from petiole import Petiole

app = Petiole("progress")


@app.task(name="progress.report", bind=True)
def report(self, steps):
    for step in range(steps):
        self.update_state(state="PROGRESS", meta={"current": step, "total": steps})
        time.sleep(0.05)


@app.task(name="progress.quiet")
def quiet(seconds):
    time.sleep(seconds)
"""


@pytest.fixture
def progress_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Petiole]:
    with importable_app(PROGRESS_APP, tmp_path, monkeypatch, prefix="progress_app") as app:
        yield app


def test_a_terminated_task_that_reports_progress_ends_revoked(progress_app: Petiole) -> None:
    with start_worker(progress_app, pool="processes", concurrency=1) as worker:
        running = progress_app.tasks["progress.report"].delay(6000)
        assert wait_until(lambda: running.state == "PROGRESS", timeout_s=30)
        running.revoke(terminate=True, reason="stuck")
        assert wait_until(lambda: worker.counts["revoked"] == 1, timeout_s=15)
    # Its progress reports went on over revoke()'s record until it was stopped.
    assert running.state == states.REVOKED
    assert running.ready()


def test_a_terminated_task_keeps_the_reason_revoke_gave_when_nothing_wrote_over_it(
    progress_app: Petiole,
) -> None:
    with start_worker(progress_app, pool="processes", concurrency=1) as worker:
        running = progress_app.tasks["progress.quiet"].delay(60)
        assert wait_until(lambda: bool(worker._running), timeout_s=30)
        running.revoke(terminate=True, reason="stuck")
        assert wait_until(lambda: worker.counts["revoked"] == 1, timeout_s=15)
    assert running.state == states.REVOKED
    assert "stuck" in str(running.info)
