"""The threads pool: N threads in the worker process.

For I/O-bound tasks and for tasks that release the GIL. Tasks share the
process, so a task that crashes the interpreter takes the worker with it (its
messages come back when their leases end); use ``processes`` for isolation.

It can be resized while it runs (``--autoscale``): threads are added at once,
and retired when idle or, if busy, once their job is done.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from petiole.config import Settings
from petiole.pools.base import Job, Outcome, Runner

# Wakes one idle thread: it exits if the pool has more threads than it should
# (shrinking), and goes back to waiting otherwise.
_CHECK_SIZE = None


class ThreadPool:
    name = "threads"

    def __init__(self, concurrency: int, settings: Settings | None = None) -> None:
        self.concurrency = max(1, concurrency)
        self._jobs: queue.SimpleQueue[tuple[Job, Callable[[Job, Outcome], None]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []  # alive, or about to start
        self._started = 0  # for thread names
        self._stopping = False
        self._runner: Runner | None = None

    def start(self, runner: Runner) -> None:
        self._runner = runner
        self._add(self.concurrency)

    def _add(self, count: int) -> None:
        with self._lock:
            added = []
            for _ in range(count):
                name = f"petiole-pool-{self._started}"
                self._started += 1
                added.append(threading.Thread(target=self._loop, name=name, daemon=True))
            self._threads.extend(added)
        for thread in added:
            thread.start()

    def _loop(self) -> None:
        runner = self._runner
        assert runner is not None
        while True:
            item = self._jobs.get()
            if item is not None:
                job, on_done = item
                on_done(job, runner.run(job))
            if self._retire_if_surplus():
                return

    def _retire_if_surplus(self) -> bool:
        """Leave the pool (return True) if it has more threads than it should."""
        with self._lock:
            if not self._stopping and len(self._threads) <= self.concurrency:
                return False
            self._threads.remove(threading.current_thread())
            return True

    def submit(self, job: Job, on_done: Callable[[Job, Outcome], None]) -> None:
        self._jobs.put((job, on_done))

    def resize(self, concurrency: int) -> None:
        """Grow at once, or shrink: idle threads leave now, busy ones after their job."""
        concurrency = max(1, concurrency)
        with self._lock:
            surplus = len(self._threads) - concurrency
            self.concurrency = concurrency
        if surplus < 0:
            self._add(-surplus)
        for _ in range(surplus):
            self._jobs.put(_CHECK_SIZE)

    def size(self) -> int:
        """Threads now in the pool (more than ``concurrency`` while busy ones retire)."""
        with self._lock:
            return len(self._threads)

    def stop(self, *, timeout_s: float) -> bool:
        with self._lock:
            self._stopping = True
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(_CHECK_SIZE)
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def terminate(self) -> None:
        # Python threads cannot be killed; they are daemons and die with the process.
        with self._lock:
            self._stopping = True
            threads = len(self._threads)
        for _ in range(threads):
            self._jobs.put(_CHECK_SIZE)
