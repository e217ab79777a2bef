"""The solo pool: one task at a time, in the worker's own consumer thread.

Simplest and cheapest; nothing else is reserved while a task runs (leases are
still renewed by the worker's lease thread). Good for debugging and for tasks
that must never overlap.
"""

from __future__ import annotations

from collections.abc import Callable

from petiole.config import Settings
from petiole.pools.base import Job, Outcome, Runner


class SoloPool:
    name = "solo"
    # submit() runs the job before it returns: the worker submits from a thread of
    # its own, never from a transport's (whose thread a task's publish may need).
    runs_inline = True

    def __init__(self, concurrency: int = 1, settings: Settings | None = None) -> None:
        self.concurrency = 1  # by definition, whatever was asked
        self._runner: Runner | None = None

    def start(self, runner: Runner) -> None:
        self._runner = runner

    def submit(self, job: Job, on_done: Callable[[Job, Outcome], None]) -> None:
        assert self._runner is not None, "start() the pool first"
        on_done(job, self._runner.run(job))

    def stop(self, *, timeout_s: float) -> bool:
        return True

    def terminate(self) -> None:
        pass
