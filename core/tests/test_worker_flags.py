"""What the worker's Celery-style options do to a Worker: time limits and child
recycling that override the settings for this worker, and excluded queues."""

from __future__ import annotations

import logging
import time

import pytest

from petiole import Petiole, hookimpl
from petiole.errors import ConfigError, SoftTimeLimitExceeded
from petiole.pools.base import Job
from petiole.pools.processes import ProcessPool
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker
from petiole.worker import Worker


def test_the_worker_soft_time_limit_applies_to_tasks_that_set_none(app: Petiole) -> None:
    @app.task
    def spin() -> None:
        # Short sleeps: a thread sees the soft limit between bytecodes.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.01)

    with start_worker(app, soft_time_limit_s=0.2), pytest.raises(SoftTimeLimitExceeded):
        spin.delay().get(timeout=10)


class Limits:
    """Records the time limits of each job the worker accepts."""

    def __init__(self) -> None:
        self.seen: list[tuple[float | None, float | None]] = []

    @hookimpl
    def petiole_task_received(self, worker: Worker, job: Job) -> None:
        self.seen.append((job.soft_time_limit_s, job.time_limit_s))


def test_a_task_and_a_call_keep_their_own_time_limits_over_the_worker(app: Petiole) -> None:
    @app.task(soft_time_limit_s=7, time_limit_s=8)
    def own() -> None: ...

    @app.task
    def plain() -> None: ...

    limits = Limits()
    app.register_plugin(limits)
    app.configure(soft_time_limit_s=1, time_limit_s=2)
    with start_worker(app, concurrency=1, soft_time_limit_s=3, time_limit_s=4):
        own.delay().get(timeout=5)
        plain.delay().get(timeout=5)
        plain.apply_async(soft_time_limit_s=5, time_limit_s=6).get(timeout=5)
    assert limits.seen == [(7, 8), (3, 4), (5, 6)]
    assert (app.settings.soft_time_limit_s, app.settings.time_limit_s) == (1, 2)


def test_without_worker_options_the_settings_apply(app: Petiole) -> None:
    @app.task
    def plain() -> None: ...

    limits = Limits()
    app.register_plugin(limits)
    app.configure(soft_time_limit_s=1, time_limit_s=2)
    with start_worker(app, concurrency=1):
        plain.delay().get(timeout=5)
    assert limits.seen == [(1, 2)]


def test_child_recycling_options_override_the_settings_for_this_worker(app: Petiole) -> None:
    app.configure(max_tasks_per_child=100, max_memory_per_child_mb=900)
    worker = Worker(app, pool="processes", max_tasks_per_child=5, max_memory_per_child_mb=512)
    pool = worker.pool  # built, not started: its children would need the app by path
    assert isinstance(pool, ProcessPool)
    assert (pool.max_tasks_per_child, pool.max_memory_per_child_mb) == (5, 512)
    assert (worker.settings.max_tasks_per_child, app.settings.max_tasks_per_child) == (5, 100)


def test_a_wrong_type_for_an_overridden_setting_is_a_clear_error(app: Petiole) -> None:
    with pytest.raises(ConfigError, match=r"max_tasks_per_child.*the worker's options"):
        Worker(app, pool="threads", max_tasks_per_child="many")  # type: ignore[arg-type]


def test_recycling_options_on_a_pool_without_children_are_logged_as_unused(
    app: Petiole, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="petiole.worker"):
        Worker(app, pool="threads", max_tasks_per_child=5)
    assert "the threads pool has no children and does not use them" in caplog.text


def test_excluded_queues_are_not_consumed(app: Petiole) -> None:
    @app.task
    def where() -> str:
        return "ran"

    kept = where.apply_async(queue="a")
    where.apply_async(queue="b")
    with start_worker(app, queues=["a", "b", "c"], exclude_queues=["b"]) as worker:
        assert worker.queues == ["a", "c"]
        assert kept.get(timeout=5) == "ran"
        assert wait_until(lambda: app.transport.size("a") == 0, timeout_s=5)
    assert app.transport.size("b") == 1


def test_excluding_from_the_worker_queues_setting(app: Petiole) -> None:
    app.configure(worker_queues=["a", "b"])
    assert Worker(app, pool="threads", exclude_queues=["a"]).queues == ["b"]


def test_excluding_every_queue_is_a_clear_error(app: Petiole) -> None:
    with pytest.raises(ConfigError, match="leaves no queue to consume of a,b"):
        Worker(app, pool="threads", queues=["a", "b"], exclude_queues=["a", "b"])
