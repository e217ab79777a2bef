"""Hostile or broken input never silences a worker: every bad message is a dead
letter with its reason, on its first delivery, and a worker thread that dies
anyway stops the worker instead of leaving a zombie that renews leases."""

from __future__ import annotations

import logging
import struct
import threading
import time
import uuid
from typing import Any

import pytest

from petiole import Petiole
from petiole.backend import ResultRecord
from petiole.envelope import MAGIC, PROTOCOL_VERSION, Envelope
from petiole.errors import MessageDeadLettered
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker
from petiole.worker import Worker
from petiole.worker.worker import EXIT_THREAD_DIED

BAD_BODIES = [
    b'[[{"__petiole__": "decimal", "v": "abc"}], {}]',
    b'[[{"__petiole__": "bytes", "v": 5}], {}]',
    b'[[{"__petiole__": "timedelta", "v": 1e400}], {}]',
    b'[[{"__petiole__": "set", "v": [[1]]}], {}]',
    b"[" * 50_000 + b"]" * 50_000,
]


def _publish_raw(app: Petiole, body: bytes, *, task: str, **headers: Any) -> str:
    task_id = str(uuid.uuid4())
    envelope = Envelope(
        {
            "protocol": PROTOCOL_VERSION,
            "id": task_id,
            "task": task,
            "sent_at": time.time(),
            **headers,
        },
        body,
        "application/json",
    )
    app.transport.publish("default", envelope.to_bytes(), message_id=task_id)
    return task_id


@pytest.mark.parametrize("pool", ["solo", "threads", "asyncio"])
def test_undecodable_bodies_are_dead_lettered_on_first_delivery_and_the_worker_goes_on(
    app: Petiole, pool: str
) -> None:
    @app.task
    def echo(value: Any) -> Any:
        return value

    for body in BAD_BODIES:
        _publish_raw(app, body, task=echo.name)
    with start_worker(app, pool=pool, concurrency=2) as worker:
        assert wait_until(
            lambda: len(app.transport.dead_letters("default")) == len(BAD_BODIES), timeout_s=10
        )
        # More bad messages than pool threads, and still every thread runs tasks.
        assert [echo.delay(i).get(timeout=10) for i in range(4)] == [0, 1, 2, 3]
        assert all(t.is_alive() for t in worker._threads)
    letters = app.transport.dead_letters("default")
    assert all("undecodable body" in d.reason for d in letters), [d.reason for d in letters]
    assert {d.delivery_count for d in letters} == {1}


def test_header_nested_too_deeply_is_dead_lettered_and_its_batchmates_run(app: Petiole) -> None:
    @app.task
    def echo(value: Any) -> Any:
        return value

    good = [echo.delay(i) for i in range(5)]
    head = (
        b'{"protocol":1,"id":"deep","task":"x","content_type":"application/json","n":'
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}"
    )
    app.transport.publish("default", MAGIC + struct.pack(">I", len(head)) + head + b"[[],{}]")
    good += [echo.delay(i) for i in range(5, 10)]
    with start_worker(app, prefetch_multiplier=16):
        assert [r.get(timeout=10) for r in good] == list(range(10))
        assert wait_until(lambda: len(app.transport.dead_letters("default")) == 1, timeout_s=10)
    (letter,) = app.transport.dead_letters("default")
    assert "nested more than" in letter.reason


def test_a_worker_thread_that_dies_stops_the_worker_with_a_nonzero_exit_code(
    app: Petiole, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(app, pool="threads", concurrency=1, reserve_wait_s=0.1)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a transport plugin bug")  # not a PetioleError: nothing expects it

    # A fault no real transport here produces on demand: a plugin breaking its contract,
    # whichever way the worker consumes (memory pushes; reserve would be used otherwise).
    worker.transport.reserve = broken  # type: ignore[method-assign]
    worker.transport.consume = broken  # type: ignore[attr-defined]
    exit_codes: list[int] = []
    runner = threading.Thread(target=lambda: exit_codes.append(worker.run()))
    with caplog.at_level(logging.CRITICAL, logger="petiole.worker"):
        runner.start()
        runner.join(timeout=10)
    assert not runner.is_alive()
    assert exit_codes == [EXIT_THREAD_DIED]
    assert isinstance(worker.fatal_error, RuntimeError)
    assert "worker thread petiole-consumer died" in caplog.text


def test_prefetched_tasks_whose_lease_was_lost_are_dropped_unrun(
    app: Petiole, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[str] = []
    release = threading.Event()

    @app.task
    def block() -> None:
        release.wait(10)

    @app.task
    def record(tag: str) -> str:
        runs.append(tag)
        return tag

    app.configure(lease_s=0.5)
    # The stall: this worker's lease keeper stops renewing, as in a SIGSTOP.
    monkeypatch.setattr(Worker, "_keep_leases", lambda self: None)
    blocker = block.delay()
    queued = [record.delay(f"t{i}") for i in range(3)]
    with (
        caplog.at_level(logging.WARNING, logger="petiole.worker"),
        start_worker(app, pool="threads", concurrency=1, prefetch_multiplier=8) as first,
    ):
        assert wait_until(lambda: first.held_count() == 4, timeout_s=10)
        # The stalled worker reserves no more: else, racing the other consumer, it
        # takes back the very messages whose leases it lost (and drops them again).
        monkeypatch.setattr(first, "_free_to_reserve", lambda: 0)
        # The leases run out; another consumer takes the prefetched messages.
        taken: list[Any] = []
        assert wait_until(
            lambda: (
                taken.extend(
                    app.transport.reserve(["default"], max_messages=10, wait_s=0.05, lease_s=30)
                )
                or len(taken) >= 3
            ),
            timeout_s=10,
        )
        release.set()
        assert wait_until(lambda: first.held_count() == 0, timeout_s=10)
    assert runs == []  # the first worker ran none of the others' messages
    dropped = [r.id for r in queued]
    assert all(task_id in caplog.text for task_id in dropped)
    assert "not running them: " in caplog.text
    assert blocker.state == "SUCCESS"  # the one already running finished


@pytest.mark.parametrize(
    "headers",
    [
        {"callbacks": [{"task": "x"}]},
        {"chain": [5]},
        {"errbacks": [[1]]},
        {"chord": {"id": "g", "size": {}, "body": {}}},
        {
            "callbacks": [
                {
                    "task": "x",
                    "args": [],
                    "kwargs": {},
                    "immutable": False,
                    "subtask_type": None,
                    "options": {"link": [7]},
                }
            ]
        },
    ],
    ids=[
        "callback-missing-fields",
        "chain-step-not-object",
        "errback-list",
        "chord-size-not-int",
        "nested-link-not-object",
    ],
)
def test_malformed_workflow_headers_are_dead_lettered_before_the_task_runs(
    app: Petiole, headers: dict[str, Any]
) -> None:
    runs: list[int] = []

    @app.task
    def record(value: int) -> None:
        runs.append(value)

    _publish_raw(app, b"[[1], {}]", task=record.name, **headers)
    with start_worker(app):
        assert wait_until(lambda: len(app.transport.dead_letters("default")) == 1, timeout_s=10)
    (letter,) = app.transport.dead_letters("default")
    assert letter.reason.startswith("malformed message: header ")
    assert runs == []


# -- a task dead-lettered before it ran: its caller is told -----------------------------


def test_a_caller_waiting_on_a_task_the_worker_does_not_register_learns_it_was_dead_lettered(
    app: Petiole,
) -> None:
    """get() with no timeout waited for ever: the message sat in the dead-letter
    store and nothing recorded the task's state."""
    sent = app.send_task("elsewhere.report", [1])
    refused = r"'elsewhere\.report' is not registered"
    with start_worker(app), pytest.raises(MessageDeadLettered, match=refused):
        sent.get()
    assert sent.state == "FAILURE"

    @app.task(name="elsewhere.report")
    def report(x: int) -> int:
        return x + 1

    assert app.transport.requeue_dead_letters("default") == 1
    # Run again, it records its own state (a handle keeps the ready state it saw).
    with start_worker(app):
        assert wait_until(lambda: app.AsyncResult(sent.id).state == "SUCCESS", timeout_s=10)
    assert app.AsyncResult(sent.id).get() == 2


def test_an_undecodable_body_is_recorded_as_the_tasks_failure(app: Petiole) -> None:
    @app.task
    def echo(value: Any) -> Any:
        return value

    task_id = _publish_raw(app, BAD_BODIES[0], task=echo.name)
    with start_worker(app), pytest.raises(MessageDeadLettered, match="undecodable body"):
        app.AsyncResult(task_id).get(timeout=10)


def test_a_forged_message_refused_unverified_records_nothing_under_its_id(app: Petiole) -> None:
    """An unsigned message claiming a task's id must not write that task's state."""
    app.configure(signer="hmac-sha256", signing_key="k" * 32, require_signature=True)

    @app.task
    def echo(value: Any) -> Any:
        return value

    task_id = _publish_raw(app, b"[[1], {}]", task=echo.name)
    with start_worker(app) as worker:
        assert wait_until(lambda: worker.counts["dead_lettered"] == 1, timeout_s=10)
    assert app.AsyncResult(task_id).state == "PENDING"


def test_a_task_that_ran_keeps_its_result_when_its_message_is_dead_lettered_later(
    app: Petiole,
) -> None:
    """Past max_deliveries a message has started before: an earlier delivery may have
    stored the task's result (and died before its ack). That result stands."""
    app.configure(max_deliveries=1)

    @app.task
    def echo(value: Any) -> Any:
        return value

    sent = echo.delay(7)
    app.store_result(
        ResultRecord(sent.id, "SUCCESS", b"7", "application/json", None, time.time(), {})
    )
    [delivery] = app.transport.reserve(["default"], max_messages=1, wait_s=1, lease_s=30)
    app.transport.nack(delivery, requeue=True)  # delivered twice: refused
    with start_worker(app) as worker:
        assert wait_until(lambda: worker.counts["dead_lettered"] == 1, timeout_s=10)
    assert app.AsyncResult(sent.id).get(timeout=1) == 7


def test_a_task_whose_workflow_broke_after_it_ran_keeps_its_result(app: Petiole) -> None:
    """The worker failing on a message after its task stored its result (a route
    function raising for the next step) dead-letters it, recording nothing over it."""

    def route(name: str, args: Any, kwargs: Any, options: Any) -> str | None:
        if name.endswith("second"):
            raise KeyError("a route function with a bug")
        return None

    app.configure(task_routes=[route])

    @app.task
    def first() -> int:
        return 1

    @app.task
    def second(x: int) -> int:
        return x

    sent = first.apply_async(link=second.s())
    with start_worker(app) as worker:
        assert wait_until(lambda: worker.counts["dead_lettered"] == 1, timeout_s=10)
    assert app.AsyncResult(sent.id).state == "SUCCESS"
