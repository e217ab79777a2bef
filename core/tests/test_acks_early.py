"""``acks_late=False``: the message is acknowledged just before its task runs (at
most once, Celery's default), per task or app-wide, without losing bad input."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole import Petiole, states
from petiole.envelope import PROTOCOL_VERSION, Envelope
from petiole.pools.base import LOST, REQUEUE, Job, Outcome
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker
from petiole.worker.settle import Settler


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Petiole]:
    url = f"sqlite:///{tmp_path / 'petiole.db'}"
    app = Petiole("acks", broker=url, backend=url, config_file="/dev/null")
    yield app
    app.close()


@pytest.mark.parametrize("where", ["task", "app"])
def test_the_message_is_gone_while_an_early_acking_task_runs(app: Petiole, where: str) -> None:
    if where == "app":
        app.configure(acks_late=False)
    started, release = threading.Event(), threading.Event()

    @app.task(**({"acks_late": False} if where == "task" else {}))
    def slow() -> str:
        started.set()
        release.wait(10)
        return "done"

    with start_worker(app):
        result = slow.delay()
        assert started.wait(10)
        assert app.transport.size("default") == 0  # acknowledged before it ran
        release.set()
        assert result.get(timeout=10) == "done"


def test_a_late_acking_task_of_an_early_acking_app_keeps_its_message(app: Petiole) -> None:
    app.configure(acks_late=False)
    started, release = threading.Event(), threading.Event()

    @app.task(acks_late=True)
    def slow() -> None:
        started.set()
        release.wait(10)

    with start_worker(app):
        result = slow.delay()
        assert started.wait(10)
        assert app.transport.size("default") == 1
        release.set()
        result.get(timeout=10)


def test_an_undecodable_body_is_dead_lettered_not_acknowledged(app: Petiole) -> None:
    @app.task(acks_late=False)
    def echo(value: object) -> object:
        return value

    task_id = str(uuid.uuid4())
    headers = {
        "protocol": PROTOCOL_VERSION,
        "id": task_id,
        "task": echo.name,
        "sent_at": time.time(),
    }
    bad = Envelope(headers, b"[[1], {", "application/json")
    app.transport.publish("default", bad.to_bytes(), message_id=task_id)
    with start_worker(app):
        assert wait_until(lambda: len(app.transport.dead_letters("default")) == 1, timeout_s=10)
        assert echo.delay(3).get(timeout=10) == 3
    [letter] = app.transport.dead_letters("default")
    assert "undecodable body" in letter.reason


def _job(app: Petiole) -> Job:
    task_id = str(uuid.uuid4())
    envelope = Envelope({"id": task_id, "task": "proj.work"}, b"[[], {}]", "application/json")
    return Job(envelope, "default", 1, task_id)


def test_a_lost_early_acked_task_fails_instead_of_returning(app: Petiole) -> None:
    settler = Settler(app, "w1")
    job = _job(app)
    settler.after_early_ack(job, Outcome(LOST, reason="its process died (SIGKILL)"))
    result = app.AsyncResult(job.envelope.task_id)
    assert result.state == states.FAILURE
    assert "SIGKILL" in str(result.result)
    assert settler.counts["failure"] == 1


def test_what_an_early_ack_cost_is_logged(app: Petiole, caplog: pytest.LogCaptureFixture) -> None:
    settler = Settler(app, "w1")
    job = _job(app)
    settler.after_early_ack(job, Outcome(REQUEUE, reason="the result store is down"))
    assert "acknowledged before the task ran (acks_late=False), so it is not run again" in (
        caplog.text
    )
    assert settler.counts["lost"] == 1
