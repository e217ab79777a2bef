"""``petiole worker --workers N``: N worker processes, each consuming on its own.

A worker's consumer is one thread in one process: however many pool children it
has, every message crosses from it to them and every outcome comes back. Worker
processes that each reserve, run and acknowledge their own messages share nothing
per task, so they scale with the CPUs (on two CPUs, two solo worker processes
drained four times what one worker with two pool children did; docs/worker.md).

The supervisor loads the app once, then forks the worker processes: each one
builds its own worker, connections and pool after the fork, so nothing that
talks to a server is shared. It then only watches them:

- **Signals.** The supervisor decides when worker processes stop: they ignore
  SIGTERM and SIGINT (a Ctrl-C at the terminal, or an init system that signals
  every process of the service, reaches them too) and stop on
  :data:`STOP_SIGNAL`, which the supervisor sends for every SIGTERM/SIGINT it
  gets. The first is a graceful stop in every worker process, the second a stop
  at once, exactly as for a single worker.
- **A worker process that exits with** :data:`EXIT_REPLACE_ME` **is started
  again at once**: a task running in it passed its hard time limit (solo pool).
- **A worker process that exits unexpectedly is started again** (its messages
  were never acknowledged and go back to the queue as for any lost worker),
  after a pause that doubles while it keeps exiting within seconds of its start.
  One that does so :data:`START_FAILURES` times in a row (a broker that refuses
  it, an app that fails in the new process) stops them all: the supervisor exits
  with that process's exit code rather than restart it forever.
- **A dead worker process's prefetched messages go back at once** (with
  ``release``): each process tells the supervisor what it holds and runs, in
  memory they share (:mod:`petiole.worker.held`), and the supervisor returns
  what it had not started instead of leaving it to wait out its lease.
- **Nothing outlives the supervisor.** Worker processes exit when it dies, even
  by SIGKILL.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import re
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from petiole.orphans import exit_with_parent
from petiole.transport import Delivery
from petiole.worker.held import HeldChannel, HeldReporter

logger = logging.getLogger("petiole.worker")

#: What the supervisor sends a worker process to stop it (twice: at once).
STOP_SIGNAL = signal.SIGUSR1
#: A worker process that exits with this status asks for a fresh one at once: it
#: ended on purpose (a task in it passed its hard time limit), not by failing.
EXIT_REPLACE_ME = 75  # sysexits' EX_TEMPFAIL: try again
#: A worker process that exits within this many seconds of its start has
#: failed to start, not merely died.
START_GRACE_S = 5.0
#: Consecutive failed starts of one worker process after which the supervisor gives up.
START_FAILURES = 5
#: Worker processes still running this long after a stop at once (a second
#: signal) are killed: their broker may not answer (a worker exits within
#: ``STOP_NOW_S`` of its own); a third signal kills them at once.
KILL_AFTER_S = 10.0
FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 30.0


#: How long a fork waits for the threads of connections just closed to end (a
#: database client's monitors stop soon after its close()).
THREADS_END_S = 2.0


def threads_left(within_s: float) -> list[str]:
    """The names of the other threads of this process still running after waiting
    up to ``within_s`` in all for them to end."""
    deadline = time.monotonic() + within_s
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    for thread in others:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in others if t.is_alive()]


def expand_name(template: str, host: str | None = None) -> str:
    """A worker name as Celery's ``-n`` writes it: ``%h`` the host's name, ``%n``
    its first label, ``%d`` the rest (the domain); ``%i`` is left for
    :func:`numbered`."""
    host = host or socket.gethostname()
    label, _, domain = host.partition(".")
    fields = {"h": host, "n": label, "d": domain}
    return re.sub(r"%([hnd])", lambda m: fields[m.group(1)], template)


def numbered(hostname: str | None, index: int) -> str | None:
    """The name of worker process ``index`` when the worker is named ``hostname``:
    ``%i`` in it replaced by the index, else ``-index`` appended. None (the default
    name, which holds the process id) stays None."""
    if hostname is None:
        return None
    if "%i" in hostname:
        return hostname.replace("%i", str(index))
    return f"{hostname}-{index}"


#: Runs one worker process: ``run(index, ready, held)`` builds its worker
#: (``supervised``, telling ``held`` what it holds when given), runs it with
#: ``stop_signals=(STOP_SIGNAL,)`` and ``ready``, and returns its exit code. It
#: starts with STOP_SIGNAL blocked; ``Worker.run`` unblocks its stop signals.
RunWorker = Callable[[int, Callable[[], None], HeldReporter | None], int]
#: Returns the messages a dead worker process held and had not started.
Release = Callable[[int, list[Delivery]], None]


@dataclass
class _Slot:
    """One worker process: which one, and how its recent starts went."""

    index: int
    pid: int = 0
    started_at: float = 0.0
    failed_starts: int = 0
    restart_at: float | None = None
    exit_code: int = 0
    held: HeldChannel | None = None


class Supervisor:
    """Starts ``count`` worker processes with ``run_worker`` and keeps them running."""

    def __init__(
        self, count: int, run_worker: RunWorker, *, release: Release | None = None
    ) -> None:
        if count < 1:
            raise ValueError(f"a supervisor runs at least 1 worker process, not {count}")
        self.count = count
        self._run_worker = run_worker
        self._release = release
        self._slots = [_Slot(index) for index in range(1, count + 1)]
        self._by_pid: dict[int, _Slot] = {}
        self._signals_seen = 0
        self._kill_at: float | None = None  # when worker processes asked twice get SIGKILL
        self._killed = False  # so: what they held is not returned (the broker may hang)
        self._gave_up: _Slot | None = None

    def run(self, *, ready: Callable[[], None] | None = None) -> int:
        """Run until every worker process stopped; return the exit code. ``ready`` is
        called once every worker process consumes. Call from the main thread."""
        self._ready_r, self._ready_w = os.pipe()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
        previous_wakeup = signal.set_wakeup_fd(self._wake_w)
        try:
            for slot in self._slots:
                self._start(slot)
            return self._watch(ready)
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for fd in (self._ready_r, self._ready_w, self._wake_r, self._wake_w):
                os.close(fd)
            for slot in self._slots:
                if slot.held is not None:
                    slot.held.close()
                    slot.held = None

    # -- watching ------------------------------------------------------------------

    def _watch(self, ready: Callable[[], None] | None) -> int:
        readies = 0
        with selectors.DefaultSelector() as selector:
            selector.register(self._ready_r, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                self._reap()
                if not self._by_pid and (self._stopping or self._gave_up is not None):
                    break
                now = time.monotonic()
                for slot in self._slots:
                    if slot.restart_at is not None and slot.restart_at <= now:
                        self._start(slot)
                if self._kill_at is not None and self._kill_at <= now:
                    self._kill_all(f"still running {KILL_AFTER_S:.0f} s after the stop at once")
                due = [s.restart_at for s in self._slots if s.restart_at is not None]
                if self._kill_at is not None:
                    due.append(self._kill_at)
                timeout = max(0.0, min(due) - now) if due else None
                for key, _ in selector.select(timeout):
                    if key.fd == self._ready_r:
                        readies += len(os.read(self._ready_r, 512))
                        if ready is not None and readies >= self.count:
                            ready()
                            ready = None
                    else:
                        with contextlib.suppress(BlockingIOError):
                            while os.read(self._wake_r, 512):
                                pass
        if self._gave_up is not None:
            return self._gave_up.exit_code or 1
        codes = [slot.exit_code for slot in self._slots if slot.exit_code]
        return codes[0] if codes else 0

    @property
    def _stopping(self) -> bool:
        return self._signals_seen > 0

    def _reap(self) -> None:
        while self._by_pid:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self._by_pid.pop(pid, None)
            if slot is not None:
                self._ended(slot, os.waitstatus_to_exitcode(status))

    def _ended(self, slot: _Slot, code: int) -> None:
        pid, slot.pid = slot.pid, 0
        slot.exit_code = code if code >= 0 else 128 - code
        self._return_unfinished(slot, code)
        if self._stopping or self._gave_up is not None:
            return
        if code == EXIT_REPLACE_ME:
            logger.info(
                "worker process %d (pid %d) asked to be replaced; starting it again",
                slot.index,
                pid,
            )
            slot.failed_starts = 0
            slot.restart_at = time.monotonic()
            return
        how = f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        lived_s = time.monotonic() - slot.started_at
        if lived_s < START_GRACE_S:
            slot.failed_starts += 1
        else:
            slot.failed_starts = 0
        if slot.failed_starts >= START_FAILURES:
            logger.critical(
                "worker process %d exited within %.0f s of its start %d times in a row "
                "(last: %s); stopping the others: see its log above",
                slot.index,
                START_GRACE_S,
                slot.failed_starts,
                how,
            )
            self._gave_up = slot
            self._signal_all(STOP_SIGNAL)
            return
        pause_s = min(MAX_PAUSE_S, FIRST_PAUSE_S * 2 ** max(0, slot.failed_starts - 1))
        logger.error(
            "worker process %d (pid %d) ended unexpectedly (%s) after %.1f s; the messages "
            "it had not started return to the queue now, a task it was running once the "
            "broker takes it back (when its lease runs out, where leases expire); starting "
            "it again in %.1f s",
            slot.index,
            pid,
            how,
            lived_s,
            pause_s,
        )
        slot.restart_at = time.monotonic() + pause_s

    def _return_unfinished(self, slot: _Slot, code: int) -> None:
        """Give the broker back what the process that ended held and had not started:
        nothing if it exited on its own (it returned its messages itself)."""
        held, slot.held = slot.held, None
        if held is None:
            return
        try:
            if code not in (0, EXIT_REPLACE_ME) and self._release is not None and not self._killed:
                unfinished = held.unfinished()
                if unfinished:
                    self._release(slot.index, unfinished)
        finally:
            held.close()

    # -- signals -------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals_seen += 1
        name = signal.Signals(signum).name
        if self._signals_seen == 1:
            logger.info(
                "%s: stopping %d worker process(es) gracefully; send it again to stop at once",
                name,
                len(self._by_pid),
            )
        elif self._signals_seen == 2:
            logger.warning("%s again: stopping every worker process now", name)
            self._kill_at = time.monotonic() + KILL_AFTER_S
        else:
            self._kill_all(f"{name} a third time")
            return
        for slot in self._slots:
            slot.restart_at = None
        self._signal_all(STOP_SIGNAL)

    def _kill_all(self, why: str) -> None:
        """SIGKILL the worker processes left; what they held comes back when its lease
        runs out (the broker may be what keeps them: it is not asked here)."""
        self._kill_at = None
        if self._by_pid:
            logger.warning(
                "%s: killing %d worker process(es); their messages come back when their "
                "leases run out",
                why,
                len(self._by_pid),
            )
        self._killed = True
        self._signal_all(signal.SIGKILL)

    def _signal_all(self, signum: int) -> None:
        for pid in list(self._by_pid):
            with contextlib.suppress(ProcessLookupError):  # already gone; reaped next
                os.kill(pid, signum)

    # -- starting ------------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        slot.restart_at = None
        others = threads_left(0.0)
        if others:  # a lock one of them held stays held forever in the child
            logger.warning(
                "forking worker process %d while this process runs other threads (%s): "
                "start them after the workers, not at import time",
                slot.index,
                ", ".join(others),
            )
        supervisor_pid = os.getpid()
        if self._release is not None:
            slot.held = HeldChannel()
        # Blocked across the fork: a stop sent before the new worker handles it stays
        # pending (the worker unblocks it once its handler is in place) instead of
        # killing the process by its default action.
        signal.pthread_sigmask(signal.SIG_BLOCK, {STOP_SIGNAL})
        # The worker process shares the supervisor's memory (the loaded app) until
        # either writes a page; a garbage collection writes to every object it
        # examines, so the child would copy them all. Frozen, its collections skip
        # what it inherited (gc.freeze's documented use); the supervisor thaws its own.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            self._become_worker(slot, supervisor_pid)
        gc.unfreeze()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {STOP_SIGNAL})
        slot.pid = pid
        slot.started_at = time.monotonic()
        self._by_pid[pid] = slot
        logger.debug("started worker process %d as pid %d", slot.index, pid)

    def _become_worker(self, slot: _Slot, supervisor_pid: int) -> None:
        """In the forked child: run one worker and exit, never returning to the caller."""
        code = 1
        index = slot.index
        try:
            multiprocessing.current_process().name = f"Worker-{index}"  # in each log line
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_IGN)
            for fd in (self._ready_r, self._wake_r, self._wake_w):
                os.close(fd)
            held = slot.held.reporter() if slot.held is not None else None
            exit_with_parent(supervisor_pid)
            ready_w = self._ready_w

            def announce_ready() -> None:
                os.write(ready_w, b"r")

            code = self._run_worker(index, announce_ready, held)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            logger.exception("worker process %d failed", index)
        finally:
            try:
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
