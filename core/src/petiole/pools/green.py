"""Pools of green threads (gevent, eventlet, ...): what they share, for plugins.

A green pool runs up to ``concurrency`` tasks at once in one OS thread, each in
its own green thread: while one waits on a socket or sleeps, the others run,
so one worker process serves hundreds of I/O-bound tasks. It needs the process
monkey-patched before anything was imported; :meth:`GreenPool.start` refuses
to run otherwise, since unpatched blocking calls would stall every green thread.

A plugin subclasses :class:`GreenPool` and sets ``library`` to an object
implementing :class:`GreenLibrary`: the dozen calls of its library the pool
makes. Everything else — time limits, revoke, terminate, stop — is here.

The plugin's ``patch()`` must import nothing but the standard library and its
library before it has patched: objects created before the patch (a
``threading.Lock`` made when some module was imported) keep the blocking
originals, so a lock contended among green threads would deadlock them. When
Petiole was imported first, it calls :func:`warn_patched_late`.

Time limits are the library's timers, not the core's ``SIGALRM`` /
async-exception mechanism (which targets OS threads; every green thread shares
one). Both are armed around the task's call only (see :func:`run_with_limits`),
never around storing its result:

* soft: ``SoftTimeLimitExceeded`` is raised inside the task at the blocking
  call it is waiting in; the task may catch it to clean up;
* hard: the green thread is interrupted by the library's timeout, which the
  task does not see as an ``Exception``, and the worker records
  ``TimeLimitExceeded``.

A green thread can be interrupted, so ``terminate`` cuts running tasks short
and ``cancel`` (revoke with ``terminate=True``) stops one. A task that computes
without ever blocking holds the whole process; no timer fires until it yields.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from petiole.config import Settings
from petiole.errors import ConfigError, SoftTimeLimitExceeded
from petiole.execution import TaskRunner, internal_error
from petiole.pools.base import REVOKED_TERMINATED, TIME_LIMIT, Job, Outcome, Runner

_POLL_S = 0.05


class GreenGroup(Protocol):
    """The green threads one pool started."""

    def spawn(self, function: Callable[..., None], /, *args: object) -> Any:
        """Start ``function(*args)`` in a new green thread (it first runs when the
        caller yields) and return a handle for :meth:`GreenLibrary.kill`. Never
        waits for a free slot: the pool bounds the work itself."""
        ...

    def join(self, timeout_s: float) -> bool:
        """Wait until every green thread of the group ended; False after ``timeout_s``."""
        ...

    def kill_all(self) -> None:
        """End every green thread of the group (``GreenletExit``), waiting briefly."""
        ...


class GreenLibrary(Protocol):
    """The calls of a green-thread library that :class:`GreenPool` makes."""

    #: The library's name, used in messages ("gevent").
    name: str
    #: What its green threads are called in messages ("greenlet", "green thread").
    unit: str
    #: The command that starts a worker patched for it ("petiole-gevent").
    command: str
    #: The plugin's package, whose ``patch()`` patches the process ("petiole_gevent").
    package: str
    #: Its timeout exception type (a BaseException the task does not catch).
    Timeout: type[BaseException]

    def missing_patches(self) -> list[str]:
        """The standard-library modules the pool needs that are not monkey-patched."""
        ...

    def start_timeout(
        self, seconds: float | None, exception: BaseException | None = None
    ) -> BaseException:
        """A started timer raising ``exception`` (else the timeout itself) in the
        calling green thread after ``seconds``; ``None`` never fires."""
        ...

    def cancel_timeout(self, timeout: BaseException) -> None: ...

    def group(self) -> GreenGroup: ...

    def kill(self, handle: Any, exception: BaseException) -> None:
        """Raise ``exception`` in the green thread ``handle`` (even one not yet begun)."""
        ...

    def current(self) -> Any:
        """The green thread running this code."""
        ...

    def is_dead(self, green_thread: Any) -> bool: ...

    def sleep(self, seconds: float) -> None: ...


def warn_patched_late(library: str) -> None:
    """Warn (``RuntimeWarning``, at the caller of the plugin's ``patch()``) that
    Petiole was imported before ``library`` patched the process: the locks it
    made at import time are not cooperative. For the plugin's ``patch()``, which
    may import this module then, since Petiole is loaded already."""
    warnings.warn(
        f"petiole was imported before {library} monkey-patched the process; patch first "
        f"(run `petiole-{library} worker ...` or call petiole_{library}.patch() before any "
        "import)",
        RuntimeWarning,
        stacklevel=3,
    )


class _Revoked(BaseException):
    """Raised in a task's green thread by :meth:`GreenPool.cancel`; a BaseException,
    so the task's ``except Exception`` does not swallow it."""


def run_with_limits(library: GreenLibrary, runner: TaskRunner, job: Job) -> Outcome:
    """What ``runner.run(job)`` does, with the job's time limits kept by the library's timers.

    The runner's own soft limit is turned off (``soft_time_limit_s=None``): it
    would arm a ``SIGALRM`` or an OS-thread watchdog, neither of which can reach
    one green thread among many. The timers cover ``runner.call`` only — the
    task, with its prerun/postrun hooks — so a limit never interrupts the
    message's decoding or the storing of its result.
    """
    started = time.perf_counter()
    prepared = runner.begin(job)
    if isinstance(prepared, Outcome):
        return prepared
    soft_s, hard_s = job.soft_time_limit_s, job.time_limit_s
    soft = library.start_timeout(
        soft_s, SoftTimeLimitExceeded(f"soft time limit of {soft_s} s exceeded")
    )
    hard = library.start_timeout(hard_s)
    try:
        called = runner.call(prepared, soft_time_limit_s=None)
    except library.Timeout as timeout:
        if timeout is not hard:
            raise  # a timeout of the task's own that it let escape
        return Outcome(
            TIME_LIMIT,
            reason=f"exceeded its time limit of {hard_s} s; its {library.unit} was stopped",
        )
    except SoftTimeLimitExceeded:
        # The task body's exceptions are outcomes (runner.call catches them): this one
        # hit a prerun/postrun hook that was still blocked when the soft limit passed.
        return Outcome(
            TIME_LIMIT, reason=f"exceeded its soft time limit of {soft_s} s in a task hook"
        )
    finally:
        library.cancel_timeout(soft)
        library.cancel_timeout(hard)
    return runner.finish(prepared, called, started)


class GreenPool:
    """Runs each job in a green thread of ``library``; see the module's docstring."""

    name: str
    library: ClassVar[GreenLibrary]

    def __init__(self, concurrency: int, settings: Settings | None = None) -> None:
        self.concurrency = max(1, concurrency)
        self._runner: TaskRunner | None = None
        # Unbounded: on_done runs in the finishing green thread and submits the next
        # job from there, before that green thread has left.
        self._group = self.library.group()
        self._running: dict[str, Any] = {}  # receipt -> green thread
        # Receipts of jobs whose green thread has begun: only those can be cut short
        # and still report (one killed before it began would never run, nor report).
        self._begun: set[str] = set()
        self._terminated = False
        self._terminator: Any = None

    def start(self, runner: Runner) -> None:
        library = self.library
        missing = library.missing_patches()
        if missing:
            raise ConfigError(
                f"the {self.name} pool needs the process monkey-patched before anything else "
                f"is imported (not patched: {', '.join(missing)}): start the worker with "
                f"`{library.command} worker ...` (or `python -m {library.package} worker ...`), "
                f"or call {library.package}.patch() first thing in your own entry point"
            )
        if not isinstance(runner, TaskRunner):
            raise ConfigError(f"the {self.name} pool runs jobs with petiole's TaskRunner")
        self._runner = runner

    def submit(self, job: Job, on_done: Callable[[Job, Outcome], None]) -> None:
        assert self._runner is not None, "start() the pool first"
        # Spawned green threads first run when this one yields: registering after is safe.
        self._running[job.receipt] = self._group.spawn(self._run, self._runner, job, on_done)

    def _run(self, runner: TaskRunner, job: Job, on_done: Callable[[Job, Outcome], None]) -> None:
        self._begun.add(job.receipt)
        try:
            outcome = run_with_limits(self.library, runner, job)
        except _Revoked:
            outcome = REVOKED_TERMINATED
        except Exception as exc:
            outcome = internal_error(job, exc)
        finally:
            # Also when terminate() kills it (GreenletExit): then nothing is reported.
            self._running.pop(job.receipt, None)
            self._begun.discard(job.receipt)
        if not self._terminated:
            on_done(job, outcome)

    def cancel(self, receipt: str) -> bool:
        """Stop the job with this receipt if it is running (revoke with terminate).
        It is reported as REVOKED."""
        green_thread = self._running.get(receipt)
        if green_thread is None or receipt not in self._begun:
            return False
        self.library.kill(green_thread, _Revoked("terminated by revoke"))
        return True

    def stop(self, *, timeout_s: float) -> bool:
        library = self.library
        deadline = time.monotonic() + timeout_s
        finished = self._group.join(timeout_s)
        # terminate() from another green thread that is still at work: the worker's
        # second-signal handler (a green thread of its own), which returns the
        # messages and then ends the process. Returning now would let the worker's
        # own shutdown close the broker under those returns.
        terminator = self._terminator
        while (
            terminator is not None
            and terminator is not library.current()
            and not library.is_dead(terminator)
            and time.monotonic() < deadline
        ):
            library.sleep(_POLL_S)
        return finished and not self._terminated  # jobs cut short did not finish

    def terminate(self) -> None:
        self._terminated = True
        self._terminator = self.library.current()
        self._group.kill_all()
