"""``revoke(terminate=True)`` of a running task leaves REVOKED as its last state, even
when the task wrote a state of its own (``update_state``) after the revocation."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole import Petiole, states
from petiole.loading import load_app
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
    """The app above, importable by path (pool children load it), on SQLite."""
    module = f"progress_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(PROGRESS_APP))
    url = f"sqlite:///{tmp_path / 'p.db'}"
    monkeypatch.setenv("PETIOLE_BROKER_URL", url)
    monkeypatch.setenv("PETIOLE_BACKEND_URL", url)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = load_app(module)
    try:
        yield app
    finally:
        app.close()
        sys.modules.pop(module, None)


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
