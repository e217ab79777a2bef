"""The threads pool: N threads in the worker process.

For I/O-bound tasks and for tasks that release the GIL. Tasks share the
process, so a task that crashes the interpreter takes the worker with it (its
messages come back when their leases end); use ``processes`` for isolation.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from petiole.config import Settings
from petiole.pools.base import Job, Outcome, Runner

_STOP = None


class ThreadPool:
    name = "threads"

    def __init__(self, concurrency: int, settings: Settings | None = None) -> None:
        self.concurrency = max(1, concurrency)
        self._jobs: queue.SimpleQueue[tuple[Job, Callable[[Job, Outcome], None]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._runner: Runner | None = None

    def start(self, runner: Runner) -> None:
        self._runner = runner
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"petiole-pool-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self) -> None:
        runner = self._runner
        assert runner is not None
        while True:
            item = self._jobs.get()
            if item is _STOP:
                return
            job, on_done = item
            on_done(job, runner.run(job))

    def submit(self, job: Job, on_done: Callable[[Job, Outcome], None]) -> None:
        self._jobs.put((job, on_done))

    def stop(self, *, timeout_s: float) -> bool:
        for _ in self._threads:
            self._jobs.put(_STOP)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def terminate(self) -> None:
        # Python threads cannot be killed; they are daemons and die with the process.
        for _ in self._threads:
            self._jobs.put(_STOP)
