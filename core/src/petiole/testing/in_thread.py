"""Running things in background threads of the test process: a worker, or one call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, cast

from petiole.app import Petiole
from petiole.worker import Worker


@contextmanager
def start_worker(
    app: Petiole, *, pool: str = "threads", concurrency: int = 2, **options: Any
) -> Iterator[Worker]:
    """Run a worker for ``app`` while the block runs; stop it gracefully after.

    Uses the threads pool by default, since test apps are often not importable
    by path (which the processes pool needs). ``options`` go to :class:`Worker`.
    """
    options.setdefault("reserve_wait_s", 0.2)
    worker = Worker(app, pool=pool, concurrency=concurrency, **options)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


T = TypeVar("T")


class InThread(Generic[T]):
    """Run ``work`` on a daemon thread now; :meth:`result` joins it and returns its
    value or re-raises its exception in the test's thread. ``finished_at``
    (monotonic) is when it ended: for tests of how soon a blocking call returned."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._work = work
        self._value: T | None = None
        self._error: BaseException | None = None
        self.finished_at = 0.0
        self._thread = threading.Thread(
            target=self._run, name="petiole-test-in-thread", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._work()
        except BaseException as exc:  # handed back to the test's thread by result()
            self._error = exc
        self.finished_at = time.monotonic()

    def result(self, timeout_s: float = 10.0) -> T:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise AssertionError(f"still running after {timeout_s} s")
        if self._error is not None:
            raise self._error
        return cast(T, self._value)
