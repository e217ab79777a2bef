"""The gevent pool: up to ``concurrency`` tasks at once, each in its own greenlet.

For I/O-bound tasks: while one greenlet waits on a socket or sleeps, the
others run, so one worker process serves hundreds of tasks at once. It needs
the process monkey-patched before anything was imported (see
:mod:`petiole_gevent.patching`); :meth:`GeventPool.start` refuses to run
otherwise, since unpatched blocking calls would stall every greenlet.

Time limits are gevent timers, not the core's ``SIGALRM`` / async-exception
mechanism (which targets OS threads; every greenlet shares one). Both are
armed around the task's call only (see :func:`run_with_limits`), never around
storing its result:

* soft: ``SoftTimeLimitExceeded`` is raised inside the task at the blocking
  call it is waiting in; the task may catch it to clean up;
* hard: the greenlet is interrupted by a ``gevent.Timeout`` the task does not
  see as an ``Exception``, and the worker records ``TimeLimitExceeded``.

A greenlet can be interrupted, so ``terminate`` cuts running tasks short and
``cancel`` (revoke with ``terminate=True``) stops one. A task that computes
without ever blocking holds the whole process; no timer fires until it yields.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
import greenlet
from gevent.pool import Group

from petiole.config import Settings
from petiole.errors import ConfigError, SoftTimeLimitExceeded
from petiole.execution import Rejected, TaskRunner
from petiole.pools.base import ACK, REJECT, TIME_LIMIT, Job, Outcome, Runner
from petiole_gevent.patching import missing_patches

_KILL_WAIT_S = 1.0
_POLL_S = 0.05


class _Revoked(BaseException):
    """Raised in a task's greenlet by :meth:`GeventPool.cancel`; a BaseException, so
    the task's ``except Exception`` does not swallow it."""


def run_with_limits(runner: TaskRunner, job: Job) -> Outcome:
    """What ``runner.run(job)`` does, with the job's time limits kept by gevent timers.

    The runner's own soft limit is turned off (``soft_time_limit_s=None``): it
    would arm a ``SIGALRM`` or an OS-thread watchdog, neither of which can reach
    one greenlet among many. The timers cover ``runner.call`` only — the task,
    with its prerun/postrun hooks — so a limit never interrupts the message's
    decoding or the storing of its result.
    """
    started = time.perf_counter()
    try:
        prepared = runner.prepare(job.envelope, queue=job.queue, delivery_count=job.delivery_count)
    except Rejected as exc:
        return Outcome(REJECT, reason=str(exc))
    soft_s, hard_s = job.soft_time_limit_s, job.time_limit_s
    soft = gevent.Timeout(soft_s, SoftTimeLimitExceeded(f"soft time limit of {soft_s} s exceeded"))
    hard = gevent.Timeout(hard_s)  # a seconds of None never fires
    soft.start()
    hard.start()
    try:
        called = runner.call(prepared, soft_time_limit_s=None)
    except gevent.Timeout as timeout:
        if timeout is not hard:
            raise  # a timeout of the task's own that it let escape
        return Outcome(
            TIME_LIMIT, reason=f"exceeded its time limit of {hard_s} s; its greenlet was stopped"
        )
    except SoftTimeLimitExceeded:
        # The task body's exceptions are outcomes (runner.call catches them): this one
        # hit a prerun/postrun hook that was still blocked when the soft limit passed.
        return Outcome(
            TIME_LIMIT, reason=f"exceeded its soft time limit of {soft_s} s in a task hook"
        )
    finally:
        soft.close()
        hard.close()
    return runner.finish(prepared, called, started)


class GeventPool:
    name = "gevent"

    def __init__(self, concurrency: int, settings: Settings | None = None) -> None:
        self.concurrency = max(1, concurrency)
        self._runner: TaskRunner | None = None
        # A Group, not a bounded gevent Pool: on_done runs in the finishing greenlet
        # and submits the next job from there, before that greenlet has left.
        self._group = Group()
        self._running: dict[str, gevent.Greenlet[..., None]] = {}  # receipt -> greenlet
        # Receipts of jobs whose greenlet has begun: only those can be cut short and
        # still report (one killed before it began would never run, nor report).
        self._begun: set[str] = set()
        self._terminated = False
        self._terminator: greenlet.greenlet | None = None

    def start(self, runner: Runner) -> None:
        missing = missing_patches()
        if missing:
            raise ConfigError(
                "the gevent pool needs the process monkey-patched before anything else is "
                f"imported (not patched: {', '.join(missing)}): start the worker with "
                "`petiole-gevent worker ...` (or `python -m petiole_gevent worker ...`), "
                "or call petiole_gevent.patch() first thing in your own entry point"
            )
        if not isinstance(runner, TaskRunner):
            raise ConfigError("the gevent pool runs jobs with petiole's TaskRunner")
        self._runner = runner

    def submit(self, job: Job, on_done: Callable[[Job, Outcome], None]) -> None:
        assert self._runner is not None, "start() the pool first"
        # Spawned greenlets first run when this one yields: registering it after is safe.
        self._running[job.receipt] = self._group.spawn(self._run, self._runner, job, on_done)

    def _run(self, runner: TaskRunner, job: Job, on_done: Callable[[Job, Outcome], None]) -> None:
        self._begun.add(job.receipt)
        try:
            outcome = run_with_limits(runner, job)
        except _Revoked:
            outcome = Outcome(ACK, "REVOKED", "terminated by revoke")
        finally:
            # Also when terminate() kills it (GreenletExit): then nothing is reported.
            self._running.pop(job.receipt, None)
            self._begun.discard(job.receipt)
        if not self._terminated:
            on_done(job, outcome)

    def cancel(self, receipt: str) -> bool:
        """Stop the job with this receipt if it is running (revoke with terminate).
        It is reported as REVOKED."""
        greenlet = self._running.get(receipt)
        if greenlet is None or receipt not in self._begun:
            return False
        greenlet.kill(_Revoked("terminated by revoke"), block=False)
        return True

    def stop(self, *, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        finished = bool(self._group.join(timeout=timeout_s))
        # terminate() from another greenlet that is still at work: the worker's
        # second-signal handler (a greenlet of its own, see signals.py), which returns
        # the messages and then ends the process. Returning now would let the worker's
        # own shutdown close the broker under those returns.
        terminator = self._terminator
        while (
            terminator is not None
            and terminator is not gevent.getcurrent()
            and not terminator.dead
            and time.monotonic() < deadline
        ):
            gevent.sleep(_POLL_S)
        return finished and not self._terminated  # jobs cut short did not finish

    def terminate(self) -> None:
        self._terminated = True
        self._terminator = gevent.getcurrent()
        self._group.kill(block=True, timeout=_KILL_WAIT_S)
