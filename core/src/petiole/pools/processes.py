"""The processes pool: N child processes, each with a job running and up to three queued.

Children are started with ``spawn`` (a clean interpreter that imports the app
by its ``module:attribute`` path), never ``fork``: the worker has threads, and
forking a threaded process can deadlock the child.

**Pipelining.** A child holds up to :attr:`ProcessPool.queue_depth` jobs: one
running and the rest queued in its pipe, so that it starts the next task the
moment one ends instead of waiting a round trip for the worker (which is what
made one job at a time ~5x slower than the solo pool on no-op tasks). Jobs go
down the pipe from whichever worker thread submits them, a child's jobs in one
write once :attr:`ProcessPool.refill` of its places are free (waking a waiting
process costs more than a no-op task; :meth:`ProcessPool.batch` groups the jobs
the worker starts at once). A reader thread per child takes the child's reports,
each one a list of events sent at once (``done`` of the job that ended, ``start``
of the next), every report that arrived in one read, so one wake-up of that
thread settles a task and tells when the next one started. A job whose body is
large is only ever sent to an idle child: the pipe's buffer then never fills,
and a submitting thread never blocks on a busy child.

**Guarantees kept with queued jobs.** A job queued in a child is checked for
revocation by the child just before it starts (``petiole.worker.revocations``,
as the worker checks the jobs it starts itself); a revoked one is reported
``REVOKED`` without running. ``cancel`` (revoke with terminate) of a job still
queued withdraws it; of a running one, kills the child. Hard time limits count
from the ``start`` event. A child that dies, is killed at a time limit, or
recycles (``max_tasks_per_child``, ``max_memory_per_child_mb``) with jobs still
queued gives those back: they never started, so they run on a fresh child and
count as no attempt; the running one is reported ``lost`` (or ``time_limit``,
or ``REVOKED``). On ``stop``, queued jobs come back as ``requeue`` outcomes
(the message returns to the broker) once the running job ends.

Children ignore SIGINT and SIGTERM — shutdown is the worker's decision — and
exit by themselves when the worker process disappears, so a SIGKILLed worker
leaves no orphans running tasks whose messages will be redelivered.

Each child sets up logging (unless a plugin's ``petiole_setup_logging`` does)
and runs ``petiole_worker_process_init`` once it has loaded the app, before it
says it is ready. The pool can be resized while it runs (``--autoscale``): new
children are started and awaited; surplus ones leave at once, giving back the
jobs queued in them, once their running job is done.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import os
import pickle
import select
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from petiole import discovery
from petiole.config import Settings
from petiole.envelope import Envelope
from petiole.errors import ConfigError, PetioleError
from petiole.execution import TaskRunner
from petiole.loading import load_app
from petiole.logs import TASK_LOGGER
from petiole.orphans import exit_with_parent
from petiole.pools.base import (
    ACK,
    LOST,
    REQUEUE,
    REVOKED_TERMINATED,
    TIME_LIMIT,
    Job,
    Outcome,
    Runner,
)
from petiole.ports import ResultsApp
from petiole.worker import hooks
from petiole.worker.retirement import resident_mb
from petiole.worker.revocations import RevocationWatch

logger = logging.getLogger("petiole.worker")

OnDone = Callable[[Job, Outcome], None]

# Worker -> child messages: (_RUN, seq, job, queued), (_SKIP, seq), _STOP.
_RUN = 0
_SKIP = 1
_STOP = None
# Child -> worker: a list of events, (_STARTED, seq), (_DONE, seq, outcome,
# resident_mb), (_RETURNED, seq) for a job given back unstarted, (_RETIRING,).
_STARTED = 0
_DONE = 1
_RETURNED = 2
_RETIRING = 3

_CHILD_START_TIMEOUT_S = 60.0
# A job with a body larger than this waits for an idle child rather than queue in a
# busy one's pipe, so the pipe's buffer (64 KiB on Linux) never fills.
_QUEUED_BODY_MAX_BYTES = 16 * 1024
# How often a child re-reads whether any revocation exists (the worker reads it as
# often); while one does, every queued job's own mark is read before it starts.
_REVOCATION_POLL_S = 1.0
_RESPAWN_BACKOFF_S = (0.5, 10.0)

REVOKED_BEFORE_START = Outcome(ACK, "REVOKED", "revoked before it started", cause="revoked")


def _send(conn: Connection, *messages: Any) -> None:
    """Write messages in one call: waking the process that reads them costs more
    than pickling a job, so several jobs for one child travel together."""
    view = memoryview(b"".join(map(_framed, messages)))
    fd = conn.fileno()
    while view:
        view = view[os.write(fd, view) :]


def _framed(message: Any) -> bytes:
    # Plain pickle of plain tuples: multiprocessing's own send builds a ForkingPickler
    # per call, and a dataclass pickles through Python-level __getstate__; together
    # they cost more than a no-op task. The framing is Connection's (a 4-byte length):
    # recv_bytes reads it too (the child's first report).
    data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    size = len(data)
    if size > _MAX_SHORT:
        return _LENGTH.pack(-1) + _LONG.pack(size) + data
    return _LENGTH.pack(size) + data


def _recv(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())  # noqa: S301 (our own child, over a private pipe)


_LENGTH = struct.Struct("!i")
_LONG = struct.Struct("!Q")
_MAX_SHORT = 0x7FFFFFFF
_READ_SIZE = 1 << 16


class _Frames:
    """The messages arriving on one end of a pipe, read in as few calls as possible.

    One ``os.read`` takes whatever has arrived — several reports of a child, or
    several jobs for it — where ``Connection.recv_bytes`` reads twice per message
    (its length, then its body). Same framing as :func:`_send`. Only this object
    reads the pipe once it is made.
    """

    def __init__(self, conn: Connection) -> None:
        self.fd = conn.fileno()
        self.buffer = bytearray()
        self._readable = select.poll()
        self._readable.register(self.fd, select.POLLIN)

    def wait(self, timeout_s: float | None) -> bool:
        """Whether there is something to read (waiting up to ``timeout_s``; None:
        until there is). Raises EOFError once the other end closed."""
        if timeout_s is None:
            # A read blocks until something arrives: no poll first (a system call
            # per report saved, on both sides of the pipe).
            while not self._complete():
                self._fill()
            return True
        deadline = time.monotonic() + timeout_s
        while not self._complete():
            remaining = deadline - time.monotonic()
            if self._readable.poll(max(0, int(remaining * 1000) + 1)):
                self._fill()
            elif time.monotonic() >= deadline:
                return False
        return True

    def read_ready(self) -> list[Any]:
        """Every message that has arrived (without waiting; maybe none)."""
        if not self._complete() and self._readable.poll(0):
            self._fill()
        return self.take()

    def take(self) -> list[Any]:
        """The complete messages already read, unpickled, in order."""
        buffer = self.buffer
        messages = []
        offset = 0
        end = len(buffer)
        with memoryview(buffer) as view:
            while end - offset >= 4:
                (size,) = _LENGTH.unpack_from(buffer, offset)
                start = offset + 4
                if size == -1:
                    if end - start < 8:
                        break
                    (size,) = _LONG.unpack_from(buffer, start)
                    start += 8
                if end - start < size:
                    break
                offset = start + size
                messages.append(pickle.loads(view[start:offset]))  # noqa: S301 (as _recv)
        del buffer[:offset]
        return messages

    def _fill(self) -> None:
        # A large message is read in as few calls as its size allows.
        data = os.read(self.fd, max(_READ_SIZE, self._missing()))
        if not data:
            raise EOFError
        self.buffer += data

    def _missing(self) -> int:
        """Bytes still to come of the first message, when its length has arrived."""
        buffer = self.buffer
        if len(buffer) < 4:
            return 0
        (size,) = _LENGTH.unpack_from(buffer, 0)
        if size == -1:
            if len(buffer) < 12:
                return 0
            return 12 + int(_LONG.unpack_from(buffer, 4)[0]) - len(buffer)
        return 4 + int(size) - len(buffer)

    def _complete(self) -> bool:
        """Whether the buffer holds at least one whole message."""
        return len(self.buffer) >= 4 and self._missing() <= 0


def _job_fields(job: Job) -> tuple[Any, ...]:
    envelope = job.envelope
    return (
        dict(envelope.headers),
        envelope.body,
        envelope.content_type,
        envelope.content_encoding,
        job.queue,
        job.delivery_count,
        job.receipt,
        job.soft_time_limit_s,
        job.time_limit_s,
    )


def _job_from(fields: tuple[Any, ...]) -> Job:
    headers, body, content_type, content_encoding, queue, count, receipt, soft, hard = fields
    envelope = Envelope(headers, body, content_type, content_encoding)
    return Job(envelope, queue, count, receipt, soft, hard)


def _outcome_fields(outcome: Outcome) -> tuple[Any, ...]:
    return (
        outcome.kind,
        outcome.state,
        outcome.reason,
        outcome.delay_s,
        outcome.runtime_s,
        outcome.cause,
    )


class _ChildLoop:
    """The child's side: take jobs from the pipe in order, run them one at a time,
    report events in batches."""

    def __init__(
        self,
        conn: Connection,
        app: ResultsApp,
        runner: TaskRunner,
        max_tasks: int,
        max_memory_mb: float,
    ) -> None:
        self.conn = conn
        self.runner = runner
        self.max_tasks = max_tasks
        self.max_memory_mb = max_memory_mb
        self.queue: collections.deque[tuple[int, Job, bool]] = collections.deque()
        self.frames = _Frames(conn)
        self.skipped: set[int] = set()
        self.stopping = False
        self.retiring = False
        self.tasks_run = 0
        self.revocations = RevocationWatch(app)
        self._revocations_read_at = float("-inf")

    def run(self) -> None:
        events: list[tuple[Any, ...]] = []
        while True:
            # Block only with nothing to report and nothing to start.
            self._drain(block=not events and (not self.queue or self.retiring))
            if self.stopping:
                events += [(_RETURNED, seq) for seq, _, _ in self.queue]
                _send(self.conn, events)
                return
            if not self.queue or self.retiring:
                if events:
                    _send(self.conn, events)
                    events = []
                continue
            seq, job, queued = self.queue.popleft()
            withdrawn = self._withdrawn(seq, job, queued)
            if withdrawn is not None:
                events.append((_DONE, seq, _outcome_fields(withdrawn), 0.0))
                continue
            events.append((_STARTED, seq))
            _send(self.conn, events)  # the worker's clock for the hard time limit starts here
            outcome = self.runner.run(job)
            self.tasks_run += 1
            # Reading /proc after every task costs more than a no-op task: only when asked.
            used_mb = resident_mb() if self.max_memory_mb else 0.0
            events = [(_DONE, seq, _outcome_fields(outcome), used_mb)]
            if self._recycle_due(used_mb):
                self.retiring = True
                events.append((_RETIRING,))

    def _drain(self, *, block: bool) -> None:
        """Read every message waiting in the pipe (and wait for one if ``block``)."""
        frames = self.frames
        if block:
            frames.wait(None)
        for message in frames.read_ready():
            self._take(message)

    def _take(self, message: Any) -> None:
        if message is _STOP:
            self.stopping = True
        elif message[0] == _RUN:
            _, seq, fields, queued = message
            self.queue.append((seq, _job_from(fields), queued))
        else:
            self.skipped.add(message[1])

    def _withdrawn(self, seq: int, job: Job, queued: bool) -> Outcome | None:
        """The outcome of a job that must not start, or None to start it."""
        if seq in self.skipped:
            self.skipped.discard(seq)
            return REVOKED_TERMINATED
        # A job that waited behind another was checked by the worker when it was
        # sent, not now: check it again, as the worker would before starting it.
        if queued:
            now = time.monotonic()
            if now - self._revocations_read_at >= _REVOCATION_POLL_S:
                self._revocations_read_at = now
                self.revocations.poll()
            if self.revocations.active and self.revocations.is_revoked(job.envelope.task_id):
                return REVOKED_BEFORE_START
        return None

    def _recycle_due(self, resident_mb: float) -> bool:
        if self.max_tasks and self.tasks_run >= self.max_tasks:
            logger.info(
                "pool child %d ran %d tasks (max_tasks_per_child)", os.getpid(), self.tasks_run
            )
            return True
        if self.max_memory_mb and resident_mb > self.max_memory_mb:
            logger.info(
                "pool child %d uses %.0f MB (max_memory_per_child_mb)", os.getpid(), resident_mb
            )
            return True
        return False


def _child_main(
    app_path: str,
    hostname: str,
    conn: Connection,
    parent_pid: int,
    log_level: int,
    task_lines: bool,
    max_tasks: int,
    max_memory_mb: float,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent(parent_pid)
    try:
        app = load_app(app_path)
        # A spawned child imports the discovered and listed task modules too.
        discovery.finalize(app, app.settings.task_modules)
        # A spawned child starts with no logging configured: the worker's, then.
        hooks.setup_logging(app, log_level, task_lines=task_lines)
        runner = TaskRunner(app, hostname=hostname)
    except BaseException as exc:
        _send(conn, ("error", f"{type(exc).__name__}: {exc}"))
        return
    hooks.process_init(app, ProcessPool.name)
    _send(conn, ("ready", os.getpid()))
    try:
        _ChildLoop(conn, app, runner, max_tasks, max_memory_mb).run()
    except (EOFError, OSError):
        return  # the worker is gone
    finally:
        app.close()


class _Slot:
    """One child process, the jobs it holds, and the worker-side thread that reads
    its reports. Its fields are guarded by the pool's lock."""

    def __init__(self, pool: ProcessPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.frames: _Frames | None = None  # the child's reports, once it is ready
        self.thread = threading.Thread(target=self._loop, name=f"petiole-slot-{index}", daemon=True)
        # seq -> (job, on_done), every job sent to the child and not reported yet.
        self.held: dict[int, tuple[Job, OnDone]] = {}
        self.running: int | None = None  # seq of the job the child runs now
        self.deadline: float | None = None  # monotonic, of the running job's hard limit
        self.skip_sent: set[int] = set()  # jobs withdrawn by cancel() before they started
        self.killed_for: Outcome | None = None  # why we killed the child, for its running job
        self.up = False  # the child is ready and takes jobs
        self.leaving = False  # surplus or stopping: takes no more jobs, then leaves

    # -- the child process ----------------------------------------------------------

    def spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe()
        pool = self.pool
        assert pool.app_path is not None
        process = ctx.Process(
            target=_child_main,
            args=(
                pool.app_path,
                pool.hostname,
                child_conn,
                os.getpid(),
                logging.getLogger().getEffectiveLevel(),
                logging.getLogger(TASK_LOGGER).isEnabledFor(logging.INFO),
                pool.max_tasks_per_child,
                pool.max_memory_per_child_mb,
            ),
            name=f"petiole-child-{self.index}",
            daemon=True,
        )
        process.start()
        # Ours closed, the child's end is its alone: its death reads as EOF here.
        child_conn.close()
        self.process, self.conn = process, parent_conn
        self.frames = _Frames(parent_conn)

    def await_ready(self) -> None:
        assert self.conn is not None
        assert self.process is not None
        if not self.conn.poll(_CHILD_START_TIMEOUT_S):
            raise PetioleError(
                f"pool child {self.index} did not start in {_CHILD_START_TIMEOUT_S} s"
            )
        try:
            kind, detail = _recv(self.conn)
        except EOFError:
            raise PetioleError(
                f"pool child {self.index} died while starting (exit code {self.process.exitcode})"
            ) from None
        if kind != "ready":
            raise PetioleError(
                f"pool child could not load the app {self.pool.app_path!r}: {detail}"
            )

    def send(self, *messages: Any) -> None:
        """Write to the child, in one call (pool lock held). A dead child's pipe
        refuses: the reader thread finds the death and deals with every job it held."""
        assert self.conn is not None
        with contextlib.suppress(OSError):
            _send(self.conn, *messages)

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5.0)

    # -- the reader thread ----------------------------------------------------------

    def _loop(self) -> None:
        while True:
            events = self._next_events()
            if events is None:
                if not self._child_ended():
                    return
                continue
            self._handle(events)

    def _next_events(self) -> list[tuple[Any, ...]] | None:
        """The events of every report the child has sent (waiting for one); None when
        it died or exited (or was killed at the running job's hard time limit)."""
        frames = self.frames
        assert frames is not None
        try:
            while True:
                deadline = self.deadline
                timeout_s = None if deadline is None else max(0.0, deadline - time.monotonic())
                if frames.wait(timeout_s):
                    return [event for report in frames.take() for event in report]
                if self.deadline == deadline:
                    self._kill_at_time_limit()
                    return None
        except (EOFError, OSError):
            return None

    def _kill_at_time_limit(self) -> None:
        pool = self.pool
        with pool._lock:
            if self.running is None:
                return
            job, _ = self.held[self.running]
            self.killed_for = Outcome(
                TIME_LIMIT,
                reason=f"exceeded its time limit of {job.time_limit_s} s; "
                "the pool child running it was killed and replaced",
            )
        self.kill()

    def _handle(self, events: list[tuple[Any, ...]]) -> None:
        pool = self.pool
        finished: list[tuple[Job, OnDone, Outcome]] = []
        returned: list[tuple[Job, OnDone]] = []
        kill = False
        with pool._lock:
            for event in events:
                kind = event[0]
                if kind == _STARTED:
                    self.running = event[1]
                    job, _ = self.held[event[1]]
                    if event[1] in self.skip_sent:
                        kill = True  # it started before the withdrawal reached the child
                        self.killed_for = REVOKED_TERMINATED
                    self.deadline = (
                        None if job.time_limit_s is None else time.monotonic() + job.time_limit_s
                    )
                elif kind == _DONE:
                    seq, fields, _ = event[1:]
                    outcome = Outcome(*fields)
                    if seq == self.running:
                        self.running, self.deadline = None, None
                    self.skip_sent.discard(seq)
                    job, on_done = self.held.pop(seq)
                    finished.append((job, on_done, outcome))
                elif kind == _RETURNED:
                    returned.append(self.held.pop(event[1]))
                else:  # _RETIRING: no more jobs for this child; it gives back the queued
                    self.up = False
                    self.send(_STOP)
        if kill:
            self.kill()
        # Jobs submitted while settling these (the worker starts the next ones) go
        # out together at the end: one write per child.
        with pool.batch():
            pool._give_back(returned)
            for job, on_done, outcome in finished:
                pool._report(job, on_done, outcome)

    def _child_ended(self) -> bool:
        """The child exited or died: settle what it held, replace it or leave.
        Returns whether this thread carries on (with a new child)."""
        pool = self.pool
        assert self.process is not None
        self.process.join(timeout=5.0)
        if pool._terminated:
            return False
        with pool._lock:
            self.up = False
            running = self.held.pop(self.running) if self.running is not None else None
            unstarted = list(self.held.values())
            self.held.clear()
            self.running, self.deadline = None, None
            self.skip_sent.clear()
            killed_for, self.killed_for = self.killed_for, None
        if running is not None:
            pool._report(*running, killed_for or self._lost(running[0]))
        pool._give_back(unstarted)
        if self.leaving or pool._stopping:
            pool._remove(self)
            return False
        self._respawn()
        pool._feed()
        return not pool._terminated

    def _lost(self, job: Job) -> Outcome:
        assert self.process is not None
        reason = f"the pool child running it died (exit code {self.process.exitcode})"
        logger.error("task %s lost: %s; starting a new child", job.envelope.task_id, reason)
        return Outcome(LOST, reason=reason)

    def _respawn(self) -> None:
        """Start a new child, retrying while it cannot start (logged) until it does or
        the pool stops."""
        backoff = _RESPAWN_BACKOFF_S[0]
        while not (self.pool._terminated or self.pool._stopping):
            try:
                self.spawn()
                self.await_ready()
            except PetioleError as exc:
                logger.critical(
                    "could not replace a pool child (retrying in %.1f s): %s", backoff, exc
                )
                self.kill()
                self.pool._stopped.wait(backoff)
                backoff = min(backoff * 2, _RESPAWN_BACKOFF_S[1])
                continue
            with self.pool._lock:
                self.up = True
            return


class ProcessPool:
    name = "processes"
    # Tasks run in children, each of which calls petiole_worker_process_init.
    runs_in_children = True
    #: Jobs each child holds at once: one running, the rest queued behind it. The
    #: worker may submit up to ``concurrency * queue_depth`` jobs at once.
    queue_depth = 4
    #: A child is sent jobs once this many of its places are free (or it is idle),
    #: filling it in one write: a write that wakes a waiting child costs more than a
    #: no-op task, and a child that still has a job queued needs no waking.
    refill = 2

    def __init__(self, concurrency: int, settings: Settings | None = None) -> None:
        self.concurrency = max(1, concurrency)
        self.max_tasks_per_child = settings.max_tasks_per_child if settings else 0
        self.max_memory_per_child_mb = settings.max_memory_per_child_mb if settings else 0.0
        self.app_path: str | None = None
        self.hostname = ""
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        # Jobs submitted while no child could take them (all full, or restarting).
        self._backlog: collections.deque[tuple[Job, OnDone]] = collections.deque()
        self._next_seq = 0
        self._next_index = 0
        self._stopping = False
        self._terminated = False
        self._stopped = threading.Event()  # wakes a slot waiting to retry a respawn
        self._local = threading.local()  # batch(): how deep this thread is in blocks

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
                slot.up = True
        for slot in slots:
            slot.thread.start()
        self._feed()

    # -- jobs ---------------------------------------------------------------------------

    def submit(self, job: Job, on_done: OnDone) -> None:
        with self._lock:
            self._backlog.append((job, on_done))
        self._feed()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Jobs submitted in this block (by this thread) go to the children when it
        ends, each child's in one write (blocks nest)."""
        local = self._local
        local.depth = getattr(local, "depth", 0) + 1
        try:
            yield
        finally:
            local.depth -= 1
            if not local.depth:
                self._feed()

    def _batching(self) -> bool:
        """Whether this thread is inside a :meth:`batch` block."""
        return bool(getattr(self._local, "depth", 0))

    def _feed(self) -> None:
        """Send backlogged jobs to children that can take them, oldest first, each
        child's in one write (not inside a :meth:`batch` block: at its end)."""
        backlog = self._backlog
        if not backlog or self._batching():
            # Read without the lock: a job backlogged before a child freed up was
            # appended before that child's report was handled, so it is seen here.
            return
        with self._lock:
            sends: dict[_Slot, list[tuple[Any, ...]]] = {}
            while backlog:
                slot = self._child_for(backlog[0][0], sends)
                if slot is None:
                    break
                job, on_done = backlog.popleft()
                seq = self._next_seq
                self._next_seq += 1
                queued = bool(slot.held)
                slot.held[seq] = (job, on_done)
                sends.setdefault(slot, []).append((_RUN, seq, _job_fields(job), queued))
            for slot, messages in sends.items():
                slot.send(*messages)

    def _child_for(self, job: Job, sending: Iterable[_Slot]) -> _Slot | None:
        """The idlest child that can take this job now, or None (lock held). A child
        is refilled once ``refill`` of its places are free, or if it is one of those
        ``sending`` to already: fewer, larger writes."""
        best: _Slot | None = None
        depth = self.queue_depth
        for slot in self._slots:
            held = len(slot.held)
            if not slot.up or slot.leaving or held >= depth:
                continue
            if held > depth - self.refill and slot not in sending:
                continue
            if best is None or held < len(best.held):
                best = slot
        if best is None:
            return None
        if best.held and len(job.envelope.body) > _QUEUED_BODY_MAX_BYTES:
            return None
        return best

    def _give_back(self, jobs: Iterable[tuple[Job, OnDone]]) -> None:
        """Jobs a child held but never started: they run on another child, or go back
        to the broker (as no attempt) when the pool is stopping."""
        jobs = list(jobs)
        if not jobs:
            return
        if self._stopping:
            for job, on_done in jobs:
                self._report(job, on_done, Outcome(REQUEUE, reason="not started: the pool stops"))
            return
        with self._lock:
            self._backlog.extendleft(reversed(jobs))
        self._feed()

    def _report(self, job: Job, on_done: OnDone, outcome: Outcome) -> None:
        if not self._terminated:
            on_done(job, outcome)

    # -- size ------------------------------------------------------------------------------

    def resize(self, concurrency: int) -> None:
        """Grow (starting children, returning once they are ready) or shrink: the
        idlest children leave, giving back their queued jobs; busy ones once their
        running job is done."""
        concurrency = max(1, concurrency)
        with self._lock:
            staying = [slot for slot in self._slots if not slot.leaving]
            surplus = len(staying) - concurrency
            if surplus >= 0:
                self.concurrency = concurrency
                for slot in sorted(staying, key=lambda s: len(s.held))[:surplus]:
                    self._retire(slot)
        if surplus < 0:
            self._grow(-surplus)

    def _retire(self, slot: _Slot) -> None:
        """Take no more jobs; the child returns its queued ones, ends its running one,
        and exits (lock held)."""
        slot.leaving = True
        slot.send(_STOP)

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
            self.concurrency = sum(1 for slot in self._slots if not slot.leaving)

    def _remove(self, slot: _Slot) -> None:
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)

    def size(self) -> int:
        """Children now in the pool (more than ``concurrency`` while busy ones retire)."""
        with self._lock:
            return len(self._slots)

    def _snapshot(self) -> list[_Slot]:
        with self._lock:
            return list(self._slots)

    # -- stopping ------------------------------------------------------------------------

    def stop(self, *, timeout_s: float) -> bool:
        with self._lock:
            self._stopping = True
            slots = list(self._slots)
            backlog = list(self._backlog)
            self._backlog.clear()
            for slot in slots:
                self._retire(slot)
        self._stopped.set()
        for job, on_done in backlog:
            self._report(job, on_done, Outcome(REQUEUE, reason="not started: the pool stops"))
        deadline = time.monotonic() + timeout_s
        for slot in slots:
            slot.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(slot.thread.is_alive() for slot in slots)

    def terminate(self) -> None:
        self._terminated = True
        self._stopped.set()
        for slot in self._snapshot():
            slot.kill()

    def cancel(self, receipt: str) -> bool:
        """Stop the job with this receipt (revoke with terminate): kill the child
        running it, or withdraw it from the child or the backlog it waits in.
        Returns whether the pool held it."""
        withdrawn: tuple[Job, OnDone] | None = None
        victim: _Slot | None = None
        with self._lock:
            found = self._find(receipt)
            if found is not None:
                slot, seq = found
                if seq == slot.running:
                    slot.killed_for, victim = REVOKED_TERMINATED, slot
                else:  # the child skips it; if it started it meanwhile, _handle kills it
                    slot.skip_sent.add(seq)
                    slot.send((_SKIP, seq))
            else:
                for item in self._backlog:
                    if item[0].receipt == receipt:
                        self._backlog.remove(item)
                        withdrawn = item
                        break
                else:
                    return False
        if victim is not None:
            victim.kill()
        if withdrawn is not None:
            self._report(*withdrawn, REVOKED_TERMINATED)
        return True

    def _find(self, receipt: str) -> tuple[_Slot, int] | None:
        """The child holding the job with this receipt, and its seq (lock held)."""
        for slot in self._slots:
            for seq, (job, _) in slot.held.items():
                if job.receipt == receipt:
                    return slot, seq
        return None

    def child_pids(self) -> list[int]:
        return [s.process.pid for s in self._snapshot() if s.process is not None and s.process.pid]
