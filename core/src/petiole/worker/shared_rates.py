"""Rate limits held by a whole ``petiole worker``, not by each of its processes.

``@app.task(rate_limit="10/m")`` limits a task's starts per worker, as in Celery.
The prefork default runs one worker process per CPU, each reserving and running
its own tasks: a token bucket in each would let N processes start the task N
times as often. So the supervisor makes, before forking, one bucket per
rate-limited task in memory its processes share (an anonymous shared mapping:
tokens and the time they were counted, two doubles), guarded by a POSIX record
lock (``lockf``) on a file they share, as the read turn is
(:mod:`petiole.worker.read_turn`): a process killed while holding it gives it up
with its life. A start of a rate-limited task pays two system calls (lock and
unlock); other tasks pay nothing.

A task registered only after the processes were forked (imported inside a task,
say) has no shared bucket: each process limits it on its own.
"""

from __future__ import annotations

import mmap
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Mapping

from petiole.ratelimit import refill
from petiole.task import Task, parse_rate_limit

if sys.platform != "win32":  # made only where a supervisor forks (POSIX): imported there
    import fcntl

_SLOT = struct.Struct("<dd")  # tokens, time.monotonic() they were counted at


class SharedRateLimits:
    """Token buckets for ``limits`` (task name: starts per second), one each, shared
    by the processes forked after this is made; capacity 1, as
    :class:`~petiole.ratelimit.TokenBucket`'s."""

    def __init__(self, limits: Mapping[str, float]) -> None:
        self._slots = {name: index for index, name in enumerate(sorted(limits))}
        self._rates = dict(limits)
        self._page = mmap.mmap(-1, max(1, len(self._slots)) * _SLOT.size)  # shared, anonymous
        now = time.monotonic()
        for index in self._slots.values():
            _SLOT.pack_into(self._page, index * _SLOT.size, 1.0, now)
        # Open for the group's life (closed by close()); unlinked: nothing to clean up.
        self._file = tempfile.TemporaryFile(prefix="petiole-rates-")  # noqa: SIM115
        self._threads = threading.Lock()  # lockf locks per process: this, per thread

    @classmethod
    def of_tasks(cls, tasks: Mapping[str, Task[..., object]]) -> SharedRateLimits:
        """The buckets of those of ``tasks`` (an app's registry) with a rate limit."""
        return cls(
            {
                name: parse_rate_limit(task.options.rate_limit)
                for name, task in tasks.items()
                if task.options.rate_limit
            }
        )

    def bucket(self, task_name: str) -> SharedBucket | None:
        """The shared bucket of ``task_name``; None if it had no rate limit then."""
        index = self._slots.get(task_name)
        if index is None:
            return None
        return SharedBucket(self, index * _SLOT.size, self._rates[task_name])

    def take(self, offset: int, rate_per_s: float) -> float:
        """:meth:`SharedBucket.take` for the slot at ``offset``."""
        fd = self._file.fileno()
        with self._threads:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            try:
                tokens, counted_at = _SLOT.unpack_from(self._page, offset)
                now = time.monotonic()
                tokens, wait_s = refill(tokens, now - counted_at, rate_per_s, capacity=1.0)
                _SLOT.pack_into(self._page, offset, tokens, now)
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN)
        return wait_s

    def close(self) -> None:
        self._file.close()
        self._page.close()


class SharedBucket:
    """One task's bucket in a :class:`SharedRateLimits`, used as a
    :class:`~petiole.ratelimit.TokenBucket` is."""

    def __init__(self, limits: SharedRateLimits, offset: int, rate_per_s: float) -> None:
        self._limits = limits
        self._offset = offset
        self.rate_per_s = rate_per_s

    def take(self) -> float:
        """Take a token if one is there and return 0; else return the seconds until one is."""
        return self._limits.take(self._offset, self.rate_per_s)
