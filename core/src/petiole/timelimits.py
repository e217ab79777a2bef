"""Soft time limits: raise ``SoftTimeLimitExceeded`` inside a task that runs too long.

Two mechanisms, chosen by where the task runs:

* In a process's **main thread** (process-pool children), a ``SIGALRM`` timer.
  Its handler raises the exception even while the task is blocked in a system
  call such as ``time.sleep`` or a socket read.
* In **any other thread** (threads and solo pools), one watchdog thread per
  process asks the interpreter to raise the exception asynchronously in the
  task's thread. The interpreter delivers it at the next bytecode, so a task
  blocked inside one long C call (a ``sleep``, a blocking read) only sees it
  when that call returns. docs/worker.md says what each pool can do.
"""

from __future__ import annotations

import heapq
import itertools
import signal
import threading
import time
from types import FrameType, TracebackType

from petiole.errors import SoftTimeLimitExceeded


class _Watchdog:
    """Raises SoftTimeLimitExceeded in threads whose deadline passed."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._heap: list[tuple[float, int, int]] = []  # (deadline, token, thread id)
        self._active: set[int] = set()
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, thread_id: int, seconds: float) -> int:
        token = next(self._tokens)
        with self._changed:
            heapq.heappush(self._heap, (time.monotonic() + seconds, token, thread_id))
            self._active.add(token)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="petiole-soft-limits", daemon=True
                )
                self._thread.start()
            self._changed.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._changed:
            self._active.discard(token)

    def _loop(self) -> None:
        # Imported by this thread, which only a soft limit armed off the main thread
        # starts: a process that arms none does not load ctypes (~0.3 MB) for it.
        import ctypes

        with self._changed:
            while True:
                while self._heap and self._heap[0][1] not in self._active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._changed.wait()
                    continue
                deadline, token, thread_id = self._heap[0]
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._changed.wait(remaining)
                    continue
                heapq.heappop(self._heap)
                self._active.discard(token)
                # Under the lock: disarm() cannot finish in between, so a task that
                # already returned is never hit.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread_id), ctypes.py_object(SoftTimeLimitExceeded)
                )


_watchdog = _Watchdog()


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise SoftTimeLimitExceeded("soft time limit exceeded")


class soft_time_limit:  # noqa: N801 - used as a context manager, like contextlib's
    """``with soft_time_limit(seconds):`` — ``None`` means no limit."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._token: int | None = None
        self._alarm = False

    def __enter__(self) -> soft_time_limit:
        if self.seconds is None:
            return self
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
            signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, max(self.seconds, 1e-3))
            self._alarm = True
        else:
            ident = threading.get_ident()
            self._token = _watchdog.arm(ident, self.seconds)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elif self._token is not None:
            _watchdog.disarm(self._token)
