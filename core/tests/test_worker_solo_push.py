"""A solo pool runs its tasks on the worker's consumer thread, never on the thread a
push transport delivers on (which a task's own publish may need: on RabbitMQ, the
connection's I/O thread carries the publish and its confirm)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from petiole import Petiole
from petiole.testing.in_thread import start_worker
from petiole.transport import Consuming


@pytest.fixture
def app() -> Iterator[Petiole]:
    url = f"memory://{uuid.uuid4().hex}"
    app = Petiole("solo-push", broker=url, backend=url, config_file="/dev/null")

    @app.task(name="thread_name")
    def thread_name() -> str:
        return threading.current_thread().name

    @app.task(name="parent")
    def parent() -> str:
        return app.tasks["thread_name"].delay().id

    yield app
    app.close()


def test_solo_tasks_run_on_the_consumer_thread_of_a_pushing_transport(app: Petiole) -> None:
    assert isinstance(app.transport, Consuming)
    with start_worker(app, pool="solo", concurrency=1):
        assert app.tasks["thread_name"].delay().get(timeout=10) == "petiole-consumer"
        child_id = app.tasks["parent"].delay().get(timeout=10)
        assert app.AsyncResult(child_id).get(timeout=10) == "petiole-consumer"


def test_threaded_pools_still_start_jobs_from_the_delivering_thread(app: Petiole) -> None:
    with start_worker(app, pool="threads", concurrency=2):
        assert app.tasks["thread_name"].delay().get(timeout=10) != "petiole-consumer"
