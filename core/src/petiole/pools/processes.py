"""The processes pool: N child processes, one task at a time each.

Children are started with ``spawn`` (a clean interpreter that imports the app
by its ``module:attribute`` path), never ``fork``: the worker has threads, and
forking a threaded process can deadlock the child. Each child has a thread in
the worker that ships it one job at a time over a pipe and waits for the
outcome; if the child dies mid-task (segfault, ``os._exit``, OOM kill) the job
is reported as ``lost`` and a fresh child takes its place.

Children ignore SIGINT and SIGTERM — shutdown is the worker's decision — and
exit by themselves when the worker process disappears, so a SIGKILLed worker
leaves no orphans running tasks whose messages will be redelivered.

Each child sets up logging (unless a plugin's ``petiole_setup_logging`` does)
and runs ``petiole_worker_process_init`` once it has loaded the app, before it
says it is ready. The pool can be resized while it runs (``--autoscale``): new
children are started and awaited; surplus ones leave when idle, or once their
job is done.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from petiole import discovery
from petiole.config import Settings
from petiole.errors import ConfigError, PetioleError
from petiole.execution import TaskRunner
from petiole.loading import load_app
from petiole.pools.base import ACK, LOST, TIME_LIMIT, Job, Outcome, Runner
from petiole.worker import hooks

logger = logging.getLogger("petiole.worker")

# To a child: exit. To a slot's thread: leave the pool if it has more children
# than it should (shrinking, stopping); otherwise go back to waiting.
_STOP = None
_CHILD_START_TIMEOUT_S = 60.0
# How often a waiting slot checks that its child is still alive.
_LIVENESS_POLL_S = 0.2


def _exit_with_parent(parent_pid: int) -> None:
    try:  # Linux: the kernel signals us the moment the parent dies.
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # Elsewhere (and as a backstop): notice re-parenting.
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, name="petiole-parent-watch", daemon=True).start()


def _child_main(
    app_path: str,
    hostname: str,
    conn: Connection,
    parent_pid: int,
    log_level: int,
    measure_memory: bool,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_parent(parent_pid)
    try:
        app = load_app(app_path)
        discovery.run_pending(app)  # a spawned child imports the discovered task modules too
        hooks.setup_logging(app, log_level)  # a spawned child starts with none configured
        runner = TaskRunner(app, hostname=hostname)
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    hooks.process_init(app, ProcessPool.name)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is _STOP:
            app.close()
            return
        # Reading /proc after every task costs more than a no-op task: only when asked.
        conn.send((runner.run(job), _resident_mb() if measure_memory else 0.0))


def _resident_mb() -> float:
    """This process's resident memory now (Linux), else its peak (elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Slot:
    """One child process and the worker-side thread that feeds it."""

    def __init__(self, pool: ProcessPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.thread = threading.Thread(target=self._loop, name=f"petiole-slot-{index}", daemon=True)
        self.tasks_run = 0  # by the current child
        self.current: Job | None = None
        self.cancelled = False

    def spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe()
        assert self.pool.app_path is not None
        process = ctx.Process(
            target=_child_main,
            args=(
                self.pool.app_path,
                self.pool.hostname,
                child_conn,
                os.getpid(),
                logging.getLogger().getEffectiveLevel(),
                bool(self.pool.max_memory_per_child_mb),
            ),
            name=f"petiole-child-{self.index}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        self.process, self.conn = process, parent_conn
        self.tasks_run = 0

    def await_ready(self) -> None:
        assert self.conn is not None
        assert self.process is not None
        if not self.conn.poll(_CHILD_START_TIMEOUT_S):
            raise PetioleError(
                f"pool child {self.index} did not start in {_CHILD_START_TIMEOUT_S} s"
            )
        try:
            kind, detail = self.conn.recv()
        except EOFError:
            raise PetioleError(
                f"pool child {self.index} died while starting (exit code {self.process.exitcode})"
            ) from None
        if kind != "ready":
            raise PetioleError(
                f"pool child could not load the app {self.pool.app_path!r}: {detail}"
            )

    def _loop(self) -> None:
        jobs = self.pool._jobs
        while True:
            item = jobs.get()
            if item is not _STOP:
                job, on_done = item
                self.current, self.cancelled = job, False
                outcome = self._run(job)
                self.current = None
                if outcome is not None and not self.pool._terminated:
                    on_done(job, outcome)
            if self.pool._retire_if_surplus(self):
                self._stop_child()
                return

    def _run(self, job: Job) -> Outcome | None:
        assert self.conn is not None
        assert self.process is not None
        deadline = None if job.time_limit_s is None else time.monotonic() + job.time_limit_s
        try:
            self.conn.send(job)
            while not self.conn.poll(_LIVENESS_POLL_S):
                if not self.process.is_alive() or self.pool._terminated or self.cancelled:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    self.kill()
                    self._respawn()
                    return Outcome(
                        TIME_LIMIT,
                        reason=f"exceeded its time limit of {job.time_limit_s} s; "
                        "the pool child running it was killed and replaced",
                    )
            if self.conn.poll(0):
                result, resident_mb = self.conn.recv()
                self.tasks_run += 1
                self._recycle_if_due(resident_mb)
                return result  # type: ignore[no-any-return]
        except (EOFError, OSError, BrokenPipeError):
            pass
        if self.pool._terminated:
            return None
        self.kill()
        self.process.join(timeout=1.0)
        if self.cancelled:
            self._respawn()
            return Outcome(ACK, "REVOKED", "terminated by revoke")
        code = self.process.exitcode
        reason = f"the pool child running it died (exit code {code})"
        logger.error("task %s lost: %s; starting a new child", job.envelope.task_id, reason)
        self._respawn()
        return Outcome(LOST, reason=reason)

    def _recycle_if_due(self, resident_mb: float) -> None:
        limits = self.pool
        why = None
        if limits.max_tasks_per_child and self.tasks_run >= limits.max_tasks_per_child:
            why = f"it ran {self.tasks_run} tasks (max_tasks_per_child)"
        elif limits.max_memory_per_child_mb and resident_mb > limits.max_memory_per_child_mb:
            why = f"it uses {resident_mb:.0f} MB (max_memory_per_child_mb)"
        if why is not None:
            logger.info("replacing pool child %d: %s", self.index, why)
            self._stop_child()
            self._respawn()

    def _respawn(self) -> None:
        try:
            self.spawn()
            self.await_ready()
        except PetioleError as exc:
            logger.critical("could not replace a pool child: %s", exc)

    def _stop_child(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError, BrokenPipeError):
                self.conn.send(_STOP)
        if self.process is not None:
            self.process.join(timeout=5.0)
            if self.process.is_alive():
                self.process.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5.0)


class ProcessPool:
    name = "processes"
    # Tasks run in children, each of which calls petiole_worker_process_init.
    runs_in_children = True

    def __init__(self, concurrency: int, settings: Settings | None = None) -> None:
        self.concurrency = max(1, concurrency)
        self.max_tasks_per_child = settings.max_tasks_per_child if settings else 0
        self.max_memory_per_child_mb = settings.max_memory_per_child_mb if settings else 0.0
        self.app_path: str | None = None
        self.hostname = ""
        self._jobs: queue.SimpleQueue[tuple[Job, Callable[[Job, Outcome], None]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._next_index = 0
        self._stopping = False
        self._terminated = False

    def start(self, runner: Runner) -> None:
        if runner.app_path is None:
            raise ConfigError(
                "the processes pool needs the app importable by path (petiole worker -A "
                "module:attribute); apps created in __main__ or in a function cannot be "
                "rebuilt in a child process. Use -P threads or -P solo for those."
            )
        self.app_path = runner.app_path
        self.hostname = runner.hostname
        slots = self._new_slots(self.concurrency)
        try:
            for slot in slots:
                slot.await_ready()
        except PetioleError:
            self._slots = slots
            self.terminate()
            raise
        self._join(slots)

    def _new_slots(self, count: int) -> list[_Slot]:
        """``count`` slots whose children are starting (all at once: each takes a while)."""
        slots = []
        for _ in range(count):
            slot = _Slot(self, self._next_index)
            self._next_index += 1
            slot.spawn()
            slots.append(slot)
        return slots

    def _join(self, slots: list[_Slot]) -> None:
        """Let these slots (children ready) take jobs."""
        with self._lock:
            self._slots.extend(slots)
        for slot in slots:
            slot.thread.start()

    def submit(self, job: Job, on_done: Callable[[Job, Outcome], None]) -> None:
        self._jobs.put((job, on_done))

    def resize(self, concurrency: int) -> None:
        """Grow (starting children, returning once they are ready) or shrink: idle
        children leave now, busy ones once their job is done."""
        concurrency = max(1, concurrency)
        with self._lock:
            surplus = len(self._slots) - concurrency
            if surplus >= 0:
                self.concurrency = concurrency
        if surplus < 0:
            self._grow(-surplus)
        for _ in range(max(surplus, 0)):
            self._jobs.put(_STOP)

    def _grow(self, count: int) -> None:
        ready = []
        for slot in self._new_slots(count):
            try:
                slot.await_ready()
            except PetioleError as exc:
                logger.error("could not add a pool child: %s", exc)
                slot.kill()
                continue
            ready.append(slot)
        self._join(ready)
        with self._lock:
            self.concurrency = len(self._slots)

    def _retire_if_surplus(self, slot: _Slot) -> bool:
        """Take ``slot`` out of the pool (return True) if the pool has more
        children than it should, or is stopping."""
        with self._lock:
            if not self._stopping and len(self._slots) <= self.concurrency:
                return False
            self._slots.remove(slot)
            return True

    def size(self) -> int:
        """Children now in the pool (more than ``concurrency`` while busy ones retire)."""
        with self._lock:
            return len(self._slots)

    def _snapshot(self) -> list[_Slot]:
        with self._lock:
            return list(self._slots)

    def stop(self, *, timeout_s: float) -> bool:
        with self._lock:
            self._stopping = True
            slots = list(self._slots)
        for _ in slots:
            self._jobs.put(_STOP)
        deadline = time.monotonic() + timeout_s
        for slot in slots:
            slot.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(slot.thread.is_alive() for slot in slots)

    def terminate(self) -> None:
        self._terminated = True
        for slot in self._snapshot():
            slot.kill()

    def cancel(self, receipt: str) -> bool:
        """Stop the job with this receipt if it is running (revoke with terminate)."""
        for slot in self._snapshot():
            if slot.current is not None and slot.current.receipt == receipt:
                slot.cancelled = True
                slot.kill()
                return True
        return False

    def child_pids(self) -> list[int]:
        return [s.process.pid for s in self._snapshot() if s.process is not None and s.process.pid]
