"""Hard time limits for tasks that run in the worker's own process (the solo pool).

A thread cannot be stopped, so a task running in the worker process is stopped
with the process: when its limit passes, the worker records the failure
(``TimeLimitExceeded``, as the processes pool does for a child it kills),
returns every other message it holds, and exits for its supervisor to start a
fresh one (``petiole worker --workers N``). Without a supervisor nothing would
start it again, so a lone worker does not arm these limits.

One thread watches every armed limit; arming one costs a lock and, only when it
is due sooner than the thread's next wake-up, a notify.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable

from petiole.pools.base import Job, Outcome

OnDone = Callable[[Job, Outcome], None]


class HardLimits:
    """Calls ``on_expiry(job)`` for a job still running at its hard time limit."""

    def __init__(self, on_expiry: Callable[[Job], None]) -> None:
        self._on_expiry = on_expiry
        self._changed = threading.Condition()
        self._armed: dict[int, tuple[float, Job]] = {}  # token -> (deadline, job)
        self._tokens = itertools.count()
        self._wakes_at = math.inf
        self._thread: threading.Thread | None = None

    @property
    def armed(self) -> int:
        """How many jobs are watched now."""
        with self._changed:
            return len(self._armed)

    def guard(self, job: Job, on_done: OnDone) -> OnDone:
        """Watch ``job`` (which has a ``time_limit_s``) from now; return what the pool
        must call instead of ``on_done``: it calls ``on_done`` unless the limit passed
        first, in which case ``on_expiry`` owns the job."""
        assert job.time_limit_s is not None
        deadline = time.monotonic() + job.time_limit_s
        token = next(self._tokens)
        with self._changed:
            self._armed[token] = (deadline, job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="petiole-hard-limits", daemon=True
                )
                self._thread.start()
            elif deadline < self._wakes_at:
                self._changed.notify()

        def finished(done: Job, outcome: Outcome) -> None:
            with self._changed:
                ours = self._armed.pop(token, None) is not None
            if ours:
                on_done(done, outcome)

        return finished

    def _watch(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                expired = [token for token, (deadline, _) in self._armed.items() if deadline <= now]
                jobs = [self._armed.pop(token)[1] for token in expired]
                if not jobs:
                    nearest = min(
                        (deadline for deadline, _ in self._armed.values()), default=math.inf
                    )
                    # A wake-up still ahead is kept: the job it was for finished, and
                    # the next job's later deadline then needs no notify.
                    if not now < self._wakes_at < nearest:
                        self._wakes_at = nearest
                    self._changed.wait(None if self._wakes_at == math.inf else self._wakes_at - now)
                    continue
            for job in jobs:
                self._on_expiry(job)
