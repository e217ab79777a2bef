"""In-process workers on a real node: what depends on the transport's I/O thread."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from petiole_amqp.testing import RabbitServer

from petiole import Petiole
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker


@pytest.fixture
def app(rabbit_server: RabbitServer) -> Iterator[Petiole]:
    app = Petiole(
        "on-rabbit",
        broker=rabbit_server.url,
        backend=f"memory://{uuid.uuid4().hex}",
        config_file="/dev/null",
        default_queue=f"on-rabbit-{uuid.uuid4().hex[:8]}",
    )

    @app.task(name="child")
    def child(x: int) -> int:
        return x + 1

    @app.task(name="parent")
    def parent(x: int) -> str:
        # Publishing waits for RabbitMQ's confirm, which the connection's I/O thread
        # carries: a solo task must not be running on that thread.
        return app.tasks["child"].delay(x).id

    yield app
    app.close()


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_a_task_that_sends_a_task_finishes_on_every_pool(app: Petiole, pool: str) -> None:
    with start_worker(app, pool=pool, concurrency=1 if pool == "solo" else 2):
        child_id = app.tasks["parent"].delay(41).get(timeout=20)
        assert app.AsyncResult(child_id).get(timeout=20) == 42


def test_why_a_message_held_behind_a_running_task_says_a_worker_may_hold_it(
    app: Petiole,
) -> None:
    # RabbitMQ counts only ready messages: a message delivered to a worker whose only
    # slot is busy leaves the queue empty, which must not read as "sent elsewhere".
    release = threading.Event()
    started = threading.Event()

    @app.task(name="gate")
    def gate() -> None:
        started.set()
        release.wait(20)

    with start_worker(app, pool="threads", concurrency=1):
        blocker = app.tasks["gate"].delay()
        assert started.wait(20)
        waiting = app.tasks["child"].delay(1)
        assert wait_until(lambda: app.transport.size(app.settings.default_queue) == 0, timeout_s=10)
        why = waiting.why()
        release.set()
        blocker.get(timeout=20)
        assert waiting.get(timeout=20) == 2
    assert "most likely a worker holds it" in why, why
    assert "does not count the messages workers hold" in why, why
