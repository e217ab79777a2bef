"""Results of short tasks run back to back are stored together, in one round trip,
before their messages are acknowledged; a lone task's result and the results
before a slow task are stored at once (core: petiole/worker/short_results.py).
A real worker (solo pool, in a thread) on a real server; the backend's own
``store``/``store_many`` are wrapped to count which one stored what."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from petiole_redis.testing import RedisServer

from petiole import Petiole
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker

WAIT_S = 20


class Counted:
    """How many records went through ``store`` and through ``store_many``."""

    def __init__(self, app: Petiole) -> None:
        backend: Any = app.backend
        self.alone = 0
        self.together: list[int] = []
        store, store_many = backend.store, backend.store_many

        def counted_store(record: Any, *, ttl_s: float | None) -> None:
            self.alone += 1
            store(record, ttl_s=ttl_s)

        def counted_store_many(records: Any, *, ttl_s: float | None) -> None:
            self.together.append(len(records))
            store_many(records, ttl_s=ttl_s)

        backend.store, backend.store_many = counted_store, counted_store_many


@pytest.fixture
def app(redis_server: RedisServer) -> Iterator[Petiole]:
    app = Petiole(
        "short-results",
        broker=redis_server.url,
        backend=redis_server.url,
        config_file=os.devnull,
        default_queue=f"short-{os.urandom(4).hex()}",
    )
    yield app
    app.transport.purge(app.settings.default_queue)
    app.close()


def test_a_backlog_of_short_tasks_stores_its_results_together(app: Petiole) -> None:
    @app.task
    def double(x: int) -> int:
        return 2 * x

    counted = Counted(app)
    with start_worker(app, pool="solo", concurrency=1, prefetch_multiplier=32) as worker:
        assert double.delay(0).get(timeout=WAIT_S) == 0  # its runs are short from now on
        results = [double.delay(i) for i in range(1, 61)]
        assert [r.get(timeout=WAIT_S) for r in results] == [2 * i for i in range(1, 61)]
        assert wait_until(lambda: worker.counts.get("success", 0) == 61, timeout_s=WAIT_S)

    assert sum(counted.together) + counted.alone == 61
    assert sum(counted.together) >= 30, (counted.together, counted.alone)
    assert max(counted.together) > 1
    assert app.transport.size(app.settings.default_queue) == 0


def test_a_lone_task_stores_its_result_at_once(app: Petiole) -> None:
    @app.task
    def echo(x: int) -> int:
        return x

    counted = Counted(app)
    with start_worker(app, pool="solo", concurrency=1):
        for i in range(5):  # one at a time: nothing ever waits behind a task
            assert echo.delay(i).get(timeout=WAIT_S) == i

    assert counted.together == []
    assert counted.alone == 5


def test_a_slow_task_does_not_hold_back_the_results_before_it(app: Petiole) -> None:
    release = threading.Event()

    @app.task
    def quick(x: int) -> int:
        return x

    @app.task
    def slow() -> str:
        release.wait(WAIT_S)
        return "done"

    with start_worker(app, pool="solo", concurrency=1, prefetch_multiplier=8) as worker:
        assert quick.delay(0).get(timeout=WAIT_S) == 0  # quick's runs are short
        with app.transport.batch():  # one reserve takes all three
            first, second = quick.delay(1), quick.delay(2)
            blocking = slow.delay()
        try:
            # slow has not finished: the results before it were stored when it started.
            assert first.get(timeout=WAIT_S) == 1
            assert second.get(timeout=WAIT_S) == 2
            assert not blocking.ready()
        finally:
            release.set()
        assert blocking.get(timeout=WAIT_S) == "done"
        assert wait_until(lambda: worker.counts.get("success", 0) == 4, timeout_s=WAIT_S)


def test_results_of_tasks_acknowledged_before_they_ran_are_stored(app: Petiole) -> None:
    # acks_late=False: no ack is left to hold back, so nothing is held back either.
    @app.task(acks_late=False)
    def early(x: int) -> int:
        return x

    with start_worker(app, pool="solo", concurrency=1, prefetch_multiplier=32):
        assert early.delay(0).get(timeout=WAIT_S) == 0  # its runs are short from now on
        results = [early.delay(i) for i in range(1, 21)]
        assert [r.get(timeout=5) for r in results] == list(range(1, 21))
