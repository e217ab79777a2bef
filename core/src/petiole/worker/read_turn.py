"""Turns at the blocking read: an idle group of worker processes answers from one.

A broker hands a message to the consumer that has waited longest (Redis's blocked
clients, in the order they blocked). Worker processes that each reserve on their
own therefore take turns message by message when the queue is nearly empty: each
message wakes a process that slept the longest, whose caches are cold, while the
one that just finished goes back to the end of the line. On two CPUs that costs a
round trip a quarter more time and a trickle of tasks twice the worker CPU of one
process doing the same (benchmarks/README.md, "floor").

So the worker processes of one supervisor (``petiole worker``'s prefork default,
``--workers N -P solo``) share a *turn*: only the process holding it reserves.
It keeps the turn while it finds messages one at a time and runs them quickly,
so a lightly loaded group answers from one warm process; it gives the turn up,
and another process reserves at once, when

- a reserve brings more than one message (a backlog: every process then reserves
  without waiting for the turn, until its reserves bring one message or none);
- it is about to run a task not known to be short (under 1 ms on average in
  this process, :mod:`petiole.worker.short_results`);
- a task has run :data:`LONG_TASK_S` while it held the turn (a short task that
  turned slow: looked for every :data:`CHECK_S` by the worker's turn thread, so
  another process reserves within about 70 ms of such a task's start);
- it has no room to reserve, or stops.

The turn is a POSIX record lock (``lockf``) on a file the processes share, so a
process that dies, even by SIGKILL, gives it up with its life; a pipe, the
*doorbell*, wakes the processes waiting for it when it is given up. A process
waiting for the turn looks again every :data:`RECHECK_S` too (a holder killed
rings no doorbell), and notices its worker stopping.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import sys
import tempfile
import threading
import time

if sys.platform != "win32":  # made only where a supervisor forks (POSIX): imported there
    import fcntl

#: A task running this long with the turn held gives the turn up.
LONG_TASK_S = 0.02
#: How often the holder's turn thread looks for such a task (it sleeps while the
#: process does not hold the turn).
CHECK_S = 0.05
#: How often a process waiting for the turn looks again without a doorbell.
RECHECK_S = 0.5


class ReadTurn:
    """The turn of one group of worker processes: made before they are forked,
    used in each (its lock is owned per process)."""

    def __init__(self) -> None:
        # Open for the group's life (closed by close()); unlinked: nothing to clean up.
        self._file = tempfile.TemporaryFile(prefix="petiole-turn-")  # noqa: SIM115
        self._bell_r, self._bell_w = os.pipe()
        os.set_blocking(self._bell_r, False)
        os.set_blocking(self._bell_w, False)
        self._lock = threading.Lock()  # taking and giving, between this process's threads
        self._holding = threading.Event()  # set while the owner holds it
        self._owner = 0  # the pid that set it: a forked child starts without the turn
        self._free = False  # reserving without the turn, during a backlog
        self._task_since: float | None = None

    @property
    def held(self) -> bool:
        return self._holding.is_set() and self._owner == os.getpid()

    def take(self, stopping: threading.Event) -> bool:
        """Wait until this process holds the turn or may reserve without it (True),
        or ``stopping`` is set (False)."""
        while True:
            if self._free or self.held:
                return True
            if stopping.is_set():
                return False
            if self._try_lock():
                return True
            with contextlib.suppress(InterruptedError):
                select.select([self._bell_r], [], [], RECHECK_S)
            with contextlib.suppress(BlockingIOError):
                os.read(self._bell_r, 65536)  # heard: whoever gives it up next rings again

    def give(self) -> None:
        """Give the turn up, if this process holds it, and wake the others."""
        with self._lock:
            if not self.held:
                return
            self._holding.clear()
            fcntl.lockf(self._file.fileno(), fcntl.LOCK_UN)
        with contextlib.suppress(BlockingIOError):  # a full pipe has rung already
            os.write(self._bell_w, b"t")

    def reserved(self, count: int) -> None:
        """After a reserve that brought ``count`` messages: more than one is a
        backlog, during which this process reserves without the turn (and gives it
        up); with one or none, it reserves next in turn."""
        self._free = count > 1
        if self._free:
            self.give()

    def wait_held(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` until this process holds the turn."""
        return self._holding.wait(timeout_s) and self.held

    def task_started(self) -> None:
        self._task_since = time.monotonic()

    def task_ended(self) -> None:
        self._task_since = None

    def give_if_task_long(self) -> None:
        """Give the turn up if a task has run :data:`LONG_TASK_S` with it held."""
        since = self._task_since
        if since is not None and self.held and time.monotonic() - since >= LONG_TASK_S:
            self.give()

    def close(self) -> None:
        """Close the file and the doorbell (the supervisor, once its processes ended)."""
        self._file.close()
        for fd in (self._bell_r, self._bell_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _try_lock(self) -> bool:
        with self._lock:
            try:
                fcntl.lockf(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    return False
                raise
            self._owner = os.getpid()
            self._holding.set()
            return True


class NoTurn:
    """The turn of a worker that reserves on its own: :class:`ReadTurn`'s calls,
    each doing nothing (taking it never waits)."""

    def take(self, stopping: threading.Event) -> bool:
        return True

    def give(self) -> None:
        pass

    def reserved(self, count: int) -> None:
        pass

    def task_started(self) -> None:
        pass

    def task_ended(self) -> None:
        pass


#: The turn of every worker that shares none.
NO_TURN = NoTurn()
