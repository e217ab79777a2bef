"""A well-framed message whose body cannot be decoded (a bad tagged value, JSON
nested too deep) is dead-lettered on its first delivery as an "undecodable
body", on every pool, and no thread or child of the worker dies of it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from harness import Workers
from hostile_app import register
from hostile_kit import (
    UNDECODABLE_BODIES,
    Stores,
    dead_letters,
    missing_threads,
    petiole_threads,
    publish_body,
)

from petiole import Petiole
from petiole.envelope import Envelope
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker

QUEUE = "default"
REASON = "undecodable body"
IN_PROCESS_POOLS = ["solo", "threads", "asyncio"]
SETTLE_S = 15.0


def _publish_undecodable(app: Petiole) -> dict[str, str]:
    """Publish every undecodable body; return task id -> case name."""
    return {
        publish_body(app, QUEUE, "hostile.echo", body): name
        for name, body in UNDECODABLE_BODIES.items()
    }


def _dead_lettered(app: Petiole) -> dict[str, tuple[str, int]]:
    """Task id -> (reason, delivery count) of every dead letter of the queue."""
    found = {}
    for letter in dead_letters(app, QUEUE):
        found[Envelope.from_bytes(letter.payload).task_id] = (letter.reason, letter.delivery_count)
    return found


def _assert_each_dead_lettered_on_first_delivery(app: Petiole, sent: dict[str, str]) -> None:
    found = _dead_lettered(app)
    missing = sorted(name for task_id, name in sent.items() if task_id not in found)
    assert not missing, f"not dead-lettered: {missing}"
    wrong = {
        sent[task_id]: found[task_id]
        for task_id in sent
        if REASON not in found[task_id][0] or found[task_id][1] != 1
    }
    assert not wrong, f"dead-lettered with the wrong reason or delivery count: {wrong}"


@pytest.mark.parametrize("pool", IN_PROCESS_POOLS)
def test_undecodable_bodies_are_dead_lettered_on_first_delivery_and_every_thread_lives(
    stores: Stores, pool: str
) -> None:
    app = register(stores.app())
    with start_worker(app, pool=pool, concurrency=2, shutdown_timeout_s=5) as worker:
        before = petiole_threads()
        concurrency = worker.concurrency
        meeting = threading.Barrier(concurrency)

        @app.task(name="hostile.meet")
        def meet() -> str:
            # Returns only when `concurrency` tasks run at once: every executor lives.
            meeting.wait(timeout=5)
            return "met"

        sent = _publish_undecodable(app)
        assert len(sent) > concurrency
        wait_until(lambda: set(sent) <= set(_dead_lettered(app)), timeout_s=SETTLE_S)
        _assert_each_dead_lettered_on_first_delivery(app, sent)

        results = [meet.delay() for _ in range(concurrency)]
        assert [r.get(timeout=10) for r in results] == ["met"] * concurrency
        assert not missing_threads(before), f"worker threads died: {missing_threads(before)}"
        assert wait_until(lambda: app.transport.size(QUEUE) == 0, timeout_s=5)


@pytest.mark.slow
def test_undecodable_bodies_are_dead_lettered_on_first_delivery_by_the_processes_pool(
    stores: Stores, tmp_path: Path
) -> None:
    app = register(stores.app())
    workers = Workers(stores.env(), tmp_path, app_module="hostile_app")
    try:
        workers.start("-P", "processes", "-c", "2", "--shutdown-timeout", "10")
        workers.wait_ready()
        sent = _publish_undecodable(app)
        wait_until(lambda: set(sent) <= set(_dead_lettered(app)), timeout_s=30)
        _assert_each_dead_lettered_on_first_delivery(app, sent)
        slow = [app.tasks["hostile.slow_echo"].delay(i, 0.2) for i in range(2)]
        assert [r.get(timeout=30) for r in slow] == [0, 1], workers.logs()
    finally:
        codes = workers.stop_all()
    log = workers.log(0)
    assert "Traceback" not in log, log[-4000:]
    assert codes == [0], log[-4000:]
