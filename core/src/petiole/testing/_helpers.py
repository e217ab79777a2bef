"""Small helpers shared by the conformance suites: unique names, polling with a
deadline, and running callables on threads so a failure in any of them fails
the test instead of vanishing with its thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

T = TypeVar("T")

_THREAD_JOIN_S = 60.0


def unique_name(prefix: str = "petiole-test") -> str:
    """A name no other test run uses, so a shared server needs no purge between runs.

    Only letters, digits and hyphens: every broker accepts those as a queue or key name.
    """
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def wait_until(
    predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.02
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; return its last value.

    The predicate is always evaluated once more after the deadline, so a slow
    poll never turns a success into a failure.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def run_concurrently(
    workers: Sequence[Callable[[], T]], *, timeout_s: float = _THREAD_JOIN_S
) -> list[T]:
    """Run each callable on its own thread, released together by a barrier.

    Returns their results in order. Re-raises the first exception any of them
    raised, and fails when one is still running after ``timeout_s``.
    """
    barrier = threading.Barrier(len(workers))
    results: list[T | None] = [None] * len(workers)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int, work: Callable[[], T]) -> None:
        try:
            barrier.wait(timeout=timeout_s)
            results[index] = work()
        except BaseException as exc:  # handed back to the test thread
            with lock:
                errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(i, w), name=f"petiole-conformance-{i}", daemon=True)
        for i, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        raise AssertionError(f"{len(stuck)} worker thread(s) still running after {timeout_s} s")
    return cast("list[T]", results)


def call_with_timeout(work: Callable[[], T], *, timeout_s: float, what: str) -> T:
    """Call ``work`` on a helper thread; fail (instead of hanging the run) if it
    has not returned after ``timeout_s``."""
    box: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            box.append(work())
        except BaseException as exc:  # handed back to the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="petiole-conformance-call", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise AssertionError(f"{what} did not return within {timeout_s} s")
    if errors:
        raise errors[0]
    return box[0]


class Background:
    """Run ``work`` on a thread once :meth:`release` is called, then a short pause later.

    Used for "happens while the caller is waiting" scenarios: the test releases
    the thread just before it starts a blocking call (``reserve``, ``wait``).
    The pause makes it likely the call is already blocked when ``work`` runs;
    the test's outcome does not depend on it, only which path it exercises.
    """

    def __init__(self, work: Callable[[], object], *, pause_s: float = 0.2) -> None:
        self._work = work
        self._pause_s = pause_s
        self._go = threading.Event()
        self._error: BaseException | None = None
        self.done_at: float | None = None
        self._thread = threading.Thread(
            target=self._run, name="petiole-conformance-bg", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        if not self._go.wait(_THREAD_JOIN_S):
            return
        time.sleep(self._pause_s)
        try:
            self._work()
        except BaseException as exc:  # handed back to the test thread
            self._error = exc
        finally:
            self.done_at = time.monotonic()

    def release(self) -> None:
        self._go.set()

    def join(self) -> None:
        """Wait for the work to finish and re-raise anything it raised."""
        self._go.set()
        self._thread.join(_THREAD_JOIN_S)
        if self._thread.is_alive():
            raise AssertionError(f"background work still running after {_THREAD_JOIN_S} s")
        if self._error is not None:
            raise self._error
