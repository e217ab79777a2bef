from __future__ import annotations

from typing import Any

import pytest

from petiole import Petiole, Request, Task, hookimpl, states
from petiole.errors import MaxRetriesExceededError
from petiole.task import TaskOptions
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker


def test_bound_task_retries_until_it_succeeds_keeping_its_id(app: Petiole) -> None:
    attempts: list[int] = []

    @app.task(bind=True)
    def flaky(self: Task[Any, Any]) -> int:
        attempts.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(exc=ConnectionError("down"), countdown=0.05)
        return self.request.retries

    with start_worker(app):
        result = flaky.delay()
        assert result.get(timeout=10) == 2
    assert attempts == [0, 1, 2]


def test_retry_state_is_visible_while_the_retry_waits_in_the_broker(app: Petiole) -> None:
    @app.task(bind=True)
    def later(self: Task[Any, Any]) -> None:
        raise self.retry(exc=TimeoutError("upstream slow"), countdown=60)

    with start_worker(app):
        result = later.delay()
        assert wait_until(lambda: result.state == states.RETRY, timeout_s=5)
        assert isinstance(result.result, TimeoutError)
        assert not result.ready()
    # The retry is a message held by the broker until due, not by a worker.
    assert app.transport.size("default") == 1


def test_autoretry_ends_in_failure_with_the_last_exception(app: Petiole) -> None:
    calls: list[int] = []

    @app.task(bind=True, autoretry_for=(ValueError,), max_retries=2, default_retry_delay=0)
    def always_bad(self: Task[Any, Any]) -> None:
        calls.append(self.request.retries)
        raise ValueError(f"bad on try {self.request.retries}")

    with start_worker(app):
        result = always_bad.delay()
        with pytest.raises(ValueError, match="bad on try 2"):
            result.get(timeout=10)
    assert calls == [0, 1, 2]
    assert result.state == states.FAILURE


def test_exceptions_not_listed_in_autoretry_for_fail_at_once(app: Petiole) -> None:
    @app.task(autoretry_for=(ConnectionError,), default_retry_delay=0)
    def wrong_kind() -> None:
        raise KeyError("k")

    with start_worker(app), pytest.raises(KeyError):
        wrong_kind.delay().get(timeout=10)


def test_retry_without_an_exception_fails_with_max_retries_exceeded(app: Petiole) -> None:
    @app.task(bind=True, max_retries=0)
    def once(self: Task[Any, Any]) -> None:
        raise self.retry(countdown=0)

    with start_worker(app), pytest.raises(MaxRetriesExceededError, match="max_retries=0"):
        once.delay().get(timeout=10)


def test_exponential_backoff_doubles_up_to_its_cap() -> None:
    options = TaskOptions(retry_backoff=2.0, retry_backoff_max=10.0, retry_jitter=False)
    task: Task[Any, Any] = Task(Petiole("t"), lambda: None, options, "t")
    assert [task.retry_delay_s(n) for n in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_spreads_the_delay_below_the_backoff() -> None:
    options = TaskOptions(retry_backoff=True, retry_backoff_max=600.0, retry_jitter=True)
    task: Task[Any, Any] = Task(Petiole("t"), lambda: None, options, "t")
    delays = {task.retry_delay_s(4) for _ in range(50)}
    assert all(0 <= d <= 16 for d in delays)
    assert len(delays) > 1


def test_failing_task_can_also_go_to_the_dead_letter_store(app: Petiole) -> None:
    @app.task(dead_letter_on_failure=True)
    def broken() -> None:
        raise RuntimeError("needs a fix")

    with start_worker(app):
        result = broken.delay()
        with pytest.raises(RuntimeError):
            result.get(timeout=10)
        assert wait_until(lambda: len(app.transport.dead_letters("default")) == 1, timeout_s=5)
    [letter] = app.transport.dead_letters("default")
    assert "RuntimeError: needs a fix" in letter.reason


class _RetryWatcher:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float]] = []

    @hookimpl
    def petiole_task_retry(
        self, task: Task[Any, Any], request: Request, reason: BaseException, delay_s: float
    ) -> None:
        self.seen.append((task.name, repr(reason), delay_s))


def test_retry_hook_fires_with_the_reason_and_delay(app: Petiole) -> None:
    watcher = _RetryWatcher()
    app.register_plugin(watcher)

    @app.task(name="hooked_retry", bind=True, max_retries=1)
    def hooked(self: Task[Any, Any]) -> None:
        if self.request.retries == 0:
            raise self.retry(exc=OSError("io"), countdown=0.2)

    with start_worker(app):
        hooked.delay().get(timeout=10)
    [(name, reason, delay_s)] = watcher.seen
    assert name == "hooked_retry"
    assert reason == "OSError('io')"
    assert 0 < delay_s <= 0.2


def test_eager_mode_runs_retries_at_once(app: Petiole) -> None:
    app.configure(eager=True)

    @app.task(bind=True, max_retries=5)
    def eager_flaky(self: Task[Any, Any]) -> int:
        if self.request.retries < 3:
            raise self.retry(countdown=100)
        return self.request.retries

    assert eager_flaky.delay().get() == 3


def test_a_task_sent_from_a_task_records_its_parent_and_root(app: Petiole) -> None:
    @app.task(bind=True)
    def child(self: Task[Any, Any]) -> dict[str, str | None]:
        return {"parent": self.request.parent_id, "root": self.request.root_id}

    @app.task(bind=True)
    def parent(self: Task[Any, Any]) -> str:
        return str(child.delay().id)

    with start_worker(app):
        outer = parent.delay()
        inner = app.AsyncResult(outer.get(timeout=10))
        assert inner.get(timeout=10) == {"parent": outer.id, "root": outer.id}
