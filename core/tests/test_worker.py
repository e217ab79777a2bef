"""The worker's duties, on both ways of consuming: pushed by the transport
(memory implements ``Consuming``) and reserved from it (SQLite does not)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from petiole import Petiole, Request, Task, hookimpl, states
from petiole.envelope import Envelope
from petiole.errors import SerializationError
from petiole.pools.processes import ProcessPool
from petiole.result import AsyncResult
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker
from petiole.transport import Consuming, Delivery
from petiole.worker import Worker


@pytest.fixture(params=["pushed", "reserved"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Petiole]:
    store = f"memory://{uuid.uuid4().hex}"
    broker = store if request.param == "pushed" else f"sqlite:///{tmp_path / 'broker.db'}"
    app = Petiole("test", broker=broker, backend=store, config_file="/dev/null")
    yield app
    app.close()


def test_the_worker_consumes_the_way_its_transport_offers(
    app: Petiole, request: pytest.FixtureRequest
) -> None:
    pushed = "[pushed]" in request.node.name
    assert isinstance(app.transport, Consuming) == pushed

    @app.task
    def echo(x: int) -> int:
        return x

    with start_worker(app):
        assert echo.delay(3).get(timeout=5) == 3


def _dead_letter_reasons(app: Petiole, queue: str = "default") -> list[str]:
    return [d.reason for d in app.transport.dead_letters(queue)]


def test_worker_runs_tasks_and_stores_their_results(app: Petiole) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app):
        results = [add.delay(i, i) for i in range(20)]
        assert [r.get(timeout=5) for r in results] == [2 * i for i in range(20)]
    assert app.transport.size("default") == 0


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_each_in_process_pool_runs_tasks(app: Petiole, pool: str) -> None:
    @app.task
    def square(x: int) -> int:
        return x * x

    with start_worker(app, pool=pool):
        assert square.delay(7).get(timeout=5) == 49


def test_failure_is_stored_and_reraised_by_get(app: Petiole) -> None:
    @app.task
    def boom() -> None:
        raise ZeroDivisionError("nope")

    with start_worker(app):
        result = boom.delay()
        with pytest.raises(ZeroDivisionError, match="nope"):
            result.get(timeout=5)
    assert result.state == states.FAILURE
    assert "ZeroDivisionError" in (result.traceback or "")


def test_message_is_acknowledged_only_after_the_task_finishes(app: Petiole) -> None:
    started, release = threading.Event(), threading.Event()

    @app.task
    def slow() -> str:
        started.set()
        release.wait(5)
        return "done"

    with start_worker(app):
        result = slow.delay()
        assert started.wait(5)
        assert app.transport.size("default") == 1
        release.set()
        assert result.get(timeout=5) == "done"
    assert app.transport.size("default") == 0


def test_running_task_keeps_its_lease_past_lease_s(app: Petiole) -> None:
    app.configure(lease_s=0.6)
    started, release = threading.Event(), threading.Event()

    @app.task
    def long() -> None:
        started.set()
        release.wait(10)

    with start_worker(app):
        result = long.delay()
        assert started.wait(5)
        # Three lease lengths pass; a rival consumer must still not see the message.
        stolen = app.transport.reserve(["default"], max_messages=1, wait_s=1.8, lease_s=5)
        release.set()
        result.get(timeout=5)
    assert stolen == []


def test_bad_messages_are_dead_lettered_with_reasons_and_the_worker_keeps_going(
    app: Petiole,
) -> None:
    @app.task
    def ok() -> str:
        return "ok"

    app.send_task("not.registered")
    app.transport.publish("default", b"garbage bytes")
    headers = {"protocol": 1, "id": "x1", "task": ok.name, "sent_at": 0.0, "retries": "many"}
    app.transport.publish("default", Envelope(headers, b"[[],{}]", "application/json").to_bytes())
    ok.apply_async(serializer="pickle")
    undecodable = {"protocol": 1, "id": "x2", "task": ok.name, "sent_at": 0.0}
    app.transport.publish(
        "default", Envelope(undecodable, b"{not json", "application/json").to_bytes()
    )

    with start_worker(app):
        assert ok.delay().get(timeout=5) == "ok"
        assert wait_until(lambda: len(_dead_letter_reasons(app)) == 5, timeout_s=5)
    reasons = " | ".join(_dead_letter_reasons(app))
    assert "'not.registered' is not registered" in reasons
    assert "bad magic" in reasons
    assert "'retries' must be int" in reasons
    assert "'application/x-python-pickle' is not accepted" in reasons
    assert "undecodable body" in reasons


def test_accepting_pickle_lets_pickled_tasks_run(app: Petiole) -> None:
    app.configure(accept_content=["json", "pickle"])

    @app.task
    def echo(x: Any) -> Any:
        return x

    with start_worker(app):
        assert echo.apply_async((3,), serializer="pickle").get(timeout=5) == 3


def test_expired_task_is_not_run_and_is_revoked_with_the_reason(app: Petiole) -> None:
    ran = []

    @app.task
    def never() -> None:
        ran.append(1)

    result = never.apply_async(expires=time.time() - 1)
    with start_worker(app), pytest.raises(Exception, match="expired at"):
        result.get(timeout=5)
    assert result.state == states.REVOKED
    assert ran == []


def test_message_over_max_deliveries_goes_to_the_dead_letter_store(app: Petiole) -> None:
    app.configure(max_deliveries=2)

    @app.task
    def poison() -> None: ...

    poison.delay()
    for _ in range(2):
        [d] = app.transport.reserve(["default"], max_messages=1, wait_s=0, lease_s=30)
        app.transport.nack(d, requeue=True)
    with start_worker(app):
        assert wait_until(lambda: len(_dead_letter_reasons(app)) == 1, timeout_s=5)
    assert "delivered 3 times (max_deliveries=2)" in _dead_letter_reasons(app)[0]


def _one_running_four_held(
    app: Petiole, count: int
) -> tuple[Worker, list[AsyncResult], threading.Event]:
    """``count`` tasks that block until the returned event is set, and a worker
    (concurrency 1, prefetch 4) running one of them and holding four."""
    started, release = threading.Event(), threading.Event()

    @app.task
    def block(i: int) -> int:
        started.set()
        release.wait(10)
        return i

    results = [block.delay(i) for i in range(count)]
    worker = Worker(app, pool="threads", concurrency=1, prefetch_multiplier=4, reserve_wait_s=0.2)
    worker.start()
    assert started.wait(5)
    assert wait_until(lambda: worker.held_count() == 4, timeout_s=5)
    return worker, results, release


def _reserve_up_to(app: Petiole, count: int, *, timeout_s: float = 5.0) -> list[Delivery]:
    """What another worker gets: reserve returns what is there, so ask until ``count``
    came or the time is up."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        got += app.transport.reserve(
            ["default"], max_messages=count - len(got), wait_s=0.5, lease_s=30
        )
    return got


def test_graceful_stop_returns_unstarted_messages_at_once(app: Petiole) -> None:
    worker, results, release = _one_running_four_held(app, 4)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    # The three unstarted ones come back while the running one is still running.
    assert len(_reserve_up_to(app, 3)) == 3
    assert not release.is_set()
    release.set()
    stopper.join(5)
    assert not stopper.is_alive()
    assert [r.state for r in results].count(states.SUCCESS) == 1


def test_the_prefetch_window_leaves_the_rest_in_the_broker_for_other_workers(
    app: Petiole,
) -> None:
    worker, _, release = _one_running_four_held(app, 20)
    try:
        # Another worker finds the other sixteen: none is buffered in this one.
        others = _reserve_up_to(app, 20, timeout_s=2.0)
        assert len(others) == 16
        assert worker.held_count() == 4
        for delivery in others:
            app.transport.nack(delivery, requeue=True)
    finally:
        release.set()
        worker.stop()


def test_the_prefetch_counts_the_jobs_a_pool_queues_in_its_executors(app: Petiole) -> None:
    # The processes pool takes several jobs per child (one running, the rest queued):
    # the multiplier applies to those, so messages still wait in the worker beyond them.
    processes = Worker(app, pool="processes", concurrency=2, prefetch_multiplier=4)
    assert processes.prefetch == 2 * ProcessPool.queue_depth * 4 == 32
    assert Worker(app, pool="threads", concurrency=2, prefetch_multiplier=4).prefetch == 8
    # A multiplier of 1 still holds one message per child: none waits behind another.
    assert Worker(app, pool="processes", concurrency=2, prefetch_multiplier=1).prefetch == 2


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_shutdown_timeout_returns_running_tasks_to_the_queue(app: Petiole, pool: str) -> None:
    """Solo runs the task in the worker's consumer thread: the stop still ends
    within the timeout (it used to wait for the task, however long it ran)."""
    started, release = threading.Event(), threading.Event()

    @app.task
    def stuck() -> None:
        started.set()
        release.wait(30)

    stuck.delay()
    with start_worker(app, pool=pool, concurrency=1, shutdown_timeout_s=0.2):
        assert started.wait(5)
        stopping_at = time.monotonic()
    assert time.monotonic() - stopping_at < 10  # not the task's 30 s
    again = app.transport.reserve(["default"], max_messages=1, wait_s=1, lease_s=30)
    release.set()
    assert len(again) == 1
    assert again[0].delivery_count == 2


class _HookRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def petiole_worker_start(self, worker: Worker) -> None:
        self.calls.append(("worker_start", worker.pool_name))

    @hookimpl
    def petiole_worker_stop(self, worker: Worker) -> None:
        self.calls.append(("worker_stop", worker.pool_name))

    @hookimpl
    def petiole_before_publish(
        self,
        app: Petiole,
        queue: str,
        headers: dict[str, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        headers["x_traced"] = "yes"
        self.calls.append(("before_publish", (queue, args)))

    @hookimpl
    def petiole_after_publish(self, app: Petiole, queue: str, headers: dict[str, Any]) -> None:
        self.calls.append(("after_publish", headers["x_traced"]))

    @hookimpl
    def petiole_task_prerun(self, task: Task[Any, Any], request: Request) -> None:
        self.calls.append(("prerun", (task.name, request.args, request.headers.get("x_traced"))))

    @hookimpl
    def petiole_task_postrun(
        self, task: Task[Any, Any], request: Request, state: str, retval: Any
    ) -> None:
        self.calls.append(("postrun", (state, repr(retval))))

    @hookimpl
    def petiole_task_failure(
        self, task: Task[Any, Any], request: Request, exc: BaseException, traceback: str
    ) -> None:
        self.calls.append(("failure", (type(exc).__name__, "Traceback" in traceback)))


def test_lifecycle_hooks_fire_with_their_arguments(app: Petiole) -> None:
    recorder = _HookRecorder()
    app.register_plugin(recorder, "recorder")

    @app.task(name="hooked")
    def hooked(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x

    with start_worker(app, pool="solo"):
        hooked.delay(1).get(timeout=5)
        with pytest.raises(ValueError, match="negative"):
            hooked.delay(-1).get(timeout=5)
    # The producer's hooks and the worker's run in different threads: a worker woken
    # at once by the publish may start the task before after_publish is called.
    publishing = [c for c in recorder.calls if c[0] in ("before_publish", "after_publish")]
    working = [c for c in recorder.calls if c not in publishing]
    assert publishing == [
        ("before_publish", ("default", (1,))),
        ("after_publish", "yes"),
        ("before_publish", ("default", (-1,))),
        ("after_publish", "yes"),
    ]
    assert working == [
        ("worker_start", "solo"),
        ("prerun", ("hooked", (1,), "yes")),
        ("postrun", ("SUCCESS", "1")),
        ("prerun", ("hooked", (-1,), "yes")),
        ("postrun", ("FAILURE", "ValueError('negative')")),
        ("failure", ("ValueError", True)),
        ("worker_stop", "solo"),
    ]


def test_a_value_the_result_store_cannot_take_is_a_failure_to_the_hooks_too(
    app: Petiole,
) -> None:
    recorder = _HookRecorder()
    app.register_plugin(recorder, "recorder")

    @app.task(name="opaque")
    def opaque() -> object:
        return object()

    with start_worker(app, pool="solo"), pytest.raises(SerializationError):
        opaque.delay().get(timeout=5)
    outcome = [c for c in recorder.calls if c[0] in ("postrun", "failure")]
    assert outcome[0][0] == "postrun"
    assert outcome[0][1][0] == "FAILURE"
    assert outcome[1] == ("failure", ("SerializationError", True))


class _SpySerializer:
    """A serializer that records every body it is asked to read."""

    name = "spy"
    content_type = "application/x-spy"

    def __init__(self) -> None:
        self.loads_calls = 0

    def dumps(self, value: Any) -> bytes:
        return repr(value).encode()

    def loads(self, data: bytes) -> Any:
        self.loads_calls += 1
        return [[], {}]


class _SpyPlugin:
    def __init__(self, spy: _SpySerializer) -> None:
        self.spy = spy

    @hookimpl
    def petiole_serializers(self) -> list[Any]:
        return [self.spy]


def test_a_content_type_that_is_not_accepted_is_never_deserialized(app: Petiole) -> None:
    spy = _SpySerializer()
    app.register_plugin(_SpyPlugin(spy), "spy")

    @app.task
    def ok() -> str:
        return "ok"

    ok.apply_async(serializer="spy")
    with start_worker(app):
        assert ok.delay().get(timeout=5) == "ok"
        assert wait_until(lambda: len(_dead_letter_reasons(app)) == 1, timeout_s=5)
    assert "'application/x-spy' is not accepted" in _dead_letter_reasons(app)[0]
    assert spy.loads_calls == 0


def test_early_message_is_redelayed_as_a_fresh_copy_not_a_redelivery(app: Petiole) -> None:
    """A broker that caps delays hands a far-future task back early, again and again:
    those hops must not count towards max_deliveries."""
    app.configure(max_deliveries=1)

    @app.task(name="later")
    def later() -> str:
        return "ran"

    body = app.serializer("json").dumps([[], {}])
    with start_worker(app) as worker:
        # Sent once the worker runs, so its start-up does not eat into the time before
        # the ETA; published with no delay, as a broker whose maximum delay had run
        # out would deliver it.
        due = time.time() + 2.0
        headers = {"protocol": 1, "id": "eta-1", "task": "later", "sent_at": 0.0, "eta": due}
        app.transport.publish("default", Envelope(headers, body, "application/json").to_bytes())
        assert app.AsyncResult("eta-1").get(timeout=10) == "ran"
    assert time.time() >= due
    assert worker.counts["redelayed"] == 1
    assert app.transport.dead_letters("default") == []


class _TinyBackendPlugin:
    """A memory result store that refuses results over 300 bytes, as memcached or
    Cassandra refuse items over their limits."""

    @hookimpl
    def petiole_result_backends(self) -> dict[str, Any]:
        from petiole._builtins.memory import MemoryBackend
        from petiole.backend import ResultRecord
        from petiole.errors import ResultTooLarge

        class TinyBackend(MemoryBackend):
            def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
                if len(record.payload) > 300:
                    raise ResultTooLarge(len(record.payload), 300, "tiny result backend")
                super().store(record, ttl_s=ttl_s)

        return {"tiny": lambda url, options: TinyBackend()}


def test_a_result_too_large_to_store_fails_the_task_saying_so(
    app: Petiole, caplog: pytest.LogCaptureFixture
) -> None:
    from petiole.errors import ResultTooLarge

    app.register_plugin(_TinyBackendPlugin(), "tiny")
    app.configure(backend_url="tiny://")

    @app.task(name="big")
    def big() -> str:
        return "x" * 1000

    @app.task
    def small() -> str:
        return "ok"

    with start_worker(app) as worker:
        sent = big.delay()
        with pytest.raises(
            ResultTooLarge, match="1002 bytes exceeds the tiny result backend limit"
        ):
            sent.get(timeout=10)
        assert small.delay().get(timeout=10) == "ok"
    assert f"task big[{sent.id}]: a result of 1002 bytes exceeds" in caplog.text  # named
    assert worker.counts["requeued"] == 0
    assert app.transport.size("default") == 0


def test_a_failed_task_is_logged_with_its_traceback(
    app: Petiole, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task(name="logged_failure")
    def broken() -> None:
        raise KeyError("missing-key")

    with (
        caplog.at_level("ERROR", logger="petiole.worker"),
        start_worker(app),
        pytest.raises(KeyError),
    ):
        broken.delay().get(timeout=10)
    [line] = [r.getMessage() for r in caplog.records if "logged_failure" in r.getMessage()]
    assert "failed in" in line
    assert "KeyError: 'missing-key'" in line
    assert 'raise KeyError("missing-key")' in line
