"""The pool contract: how a worker hands a task to whatever runs it.

The worker's consumer reserves and checks messages; a pool only runs them. It
receives a :class:`Job` (the parsed envelope and where it came from), runs it
with the :class:`Runner` it was started with, and reports an :class:`Outcome`
through the ``on_done`` callback given with the job. The runner does the whole
of a task's execution — deserializing, calling, storing the result — so a pool
that runs jobs in child processes only ships the job there and the outcome back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from petiole.backend import ResultRecord
from petiole.config import Settings
from petiole.envelope import Envelope

# Outcome kinds, telling the consumer what to do with the message.
ACK = "ack"  # finished (any final state); remove the message
REJECT = "reject"  # cannot ever run (undecodable body...); dead-letter with the reason
REQUEUE = "requeue"  # give it back, after delay_s (retry, result store down)
LOST = "lost"  # the process running it died; requeue or fail per settings
TIME_LIMIT = "time_limit"  # killed at its hard time limit; the worker records the failure


# Job and Outcome are made once or twice per task, and a frozen dataclass's __init__
# sets each field through object.__setattr__ (1.3 us against 0.3 for six fields):
# not frozen, and never changed once made.
@dataclass(slots=True)
class Job:
    """A message the worker accepted, with the time limits that apply to it."""

    envelope: Envelope
    queue: str
    delivery_count: int
    receipt: str
    soft_time_limit_s: float | None = None
    time_limit_s: float | None = None
    #: Set by the worker for a pool that runs jobs in its own process: the runner
    #: may leave a plain successful result to the worker (:attr:`Outcome.record`),
    #: which stores it with others before acknowledging (see the worker's
    #: ``_start_pending``).
    defer_result: bool = False


@dataclass(slots=True)
class Outcome:
    kind: str
    state: str = ""
    reason: str = ""
    delay_s: float = 0.0
    runtime_s: float = 0.0
    #: Why a message was refused before its task ran (``"undecodable"``, for the
    #: ``petiole_task_rejected`` hook), or ``"revoked"`` for a job the pool held
    #: queued and found revoked before starting it (the worker calls
    #: ``petiole_task_revoked``), or ``"terminated"`` for a task stopped by
    #: ``revoke(terminate=True)`` (the worker records it REVOKED again: the task
    #: may have written a state of its own over the revocation's); empty for
    #: every other outcome.
    cause: str = ""
    #: A result the runner did not store, for the worker to store before it
    #: acknowledges the message; only for a job with ``defer_result``.
    record: ResultRecord | None = None


#: A running task stopped by ``revoke(terminate=True)``: its process was killed or replaced.
REVOKED_TERMINATED = Outcome(ACK, "REVOKED", "terminated by revoke", cause="terminated")


class Runner(Protocol):
    """Runs one job to completion and never raises (failures are outcomes).

    ``app_path`` (``"module:attribute"``) lets a pool rebuild the same runner in
    a child process; it is ``None`` when the app cannot be imported by path.
    ``hostname`` names the worker in results and logs, children included.
    """

    app_path: str | None
    hostname: str

    def run(self, job: Job) -> Outcome: ...


@runtime_checkable
class Pool(Protocol):
    """Created by a factory registered through ``petiole_pools``:
    ``factory(concurrency, settings) -> Pool``."""

    name: str
    concurrency: int

    def start(self, runner: Runner) -> None:
        """Start the executors (threads, children). Raises if the pool cannot run
        this runner (a process pool needs ``runner.app_path``)."""
        ...

    def submit(self, job: Job, on_done: Callable[[Job, Outcome], None]) -> None:
        """Run ``job``; call ``on_done`` exactly once with its outcome, from any thread.

        The worker submits only while fewer than ``concurrency`` jobs are running,
        or ``concurrency x queue_depth`` for a pool that says, with an attribute
        ``queue_depth`` (optional; absent means 1), that each executor takes that
        many jobs at once and starts the next without waiting for the worker. Such
        a pool checks a queued job for revocation before starting it (reporting
        ``Outcome(ACK, "REVOKED", cause="revoked")``), counts its time limits from
        its start, and gives back (``REQUEUE``, no delay) queued jobs it will not
        start. Such a pool may also offer ``batch()`` (optional), a context manager:
        jobs submitted inside the block may be held back and sent together when it
        ends (one write per child instead of one per job); the worker wraps each
        round of submissions in it.
        A pool that runs the job in the caller's thread before returning (solo)
        says so with a class attribute ``runs_inline = True`` (optional; absent
        means False): the worker then never submits from a transport's thread,
        which the task itself may need (to publish).

        A pool that runs jobs in child processes says so with a class attribute
        ``runs_in_children = True`` (optional; absent means False) and calls the
        ``petiole_worker_process_init`` hook in each child before its first job
        (:func:`petiole.worker.hooks.process_init`); for any other pool the
        worker calls that hook once, in its own process, before :meth:`start`.
        """
        ...

    def stop(self, *, timeout_s: float) -> bool:
        """Let running jobs finish (up to ``timeout_s``) and stop the executors.
        Returns True if every running job finished."""
        ...

    def terminate(self) -> None:
        """Stop at once. ``on_done`` is not called for jobs cut short; the worker
        returns their messages to the queue."""
        ...


@runtime_checkable
class Resizable(Protocol):
    """Optional capability: a pool whose size can change while it runs.

    ``petiole worker --autoscale MAX,MIN`` needs it; a pool without it is refused
    for autoscaling with an error naming the pools that have it. Implement it by
    adding :meth:`resize` to a :class:`Pool`.
    """

    concurrency: int

    def resize(self, concurrency: int) -> None:
        """Run up to ``concurrency`` (at least 1) jobs at once from now on.

        Growing starts the new executors (threads, children) and returns once they
        can take jobs; ``self.concurrency`` is raised only then. Shrinking lowers
        ``self.concurrency`` at once and retires idle executors first; a busy one
        retires when its job finishes: a job is never cut short. Called by one
        thread at a time (the worker's autoscaler), never before :meth:`Pool.start`
        or after :meth:`Pool.stop`. Raises nothing: an executor that cannot start
        is logged, and ``self.concurrency`` says how many there are.
        """
        ...


PoolFactory = Callable[[int, "Settings"], Pool]
"""``factory(concurrency, settings)``: the pool reads whatever settings it honours."""
