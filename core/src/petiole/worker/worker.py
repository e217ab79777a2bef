"""The worker: reserve messages, check them, run them on a pool, settle each one.

Four threads share the work:

* the **consumer** reserves up to ``prefetch`` messages — or, from a transport
  that pushes (:class:`~petiole.transport.Consuming`), opens a consumer with a
  ``prefetch`` window and lets the transport's thread hand messages in — checks
  each one (delivery count, framing, content type, registration, expiry, ETA)
  without deserializing its body, and queues the runnable ones;
* the **pool** runs jobs, calling back with an outcome that the worker settles
  (ack, dead-letter or requeue) — only after the task finished;
* the **lease keeper** renews the lease of every message the worker holds, so
  a long task is never handed to a second worker while this one is alive;
* the **control** thread watches for revocations;
* with ``autoscale``, the **autoscaler** resizes the pool between its bounds
  by the work waiting and the time executors stay idle (see
  :mod:`petiole.worker.autoscale`); the prefetch follows the pool's size.

Shutdown (SIGTERM, SIGINT, or :meth:`Worker.stop`) stops reserving, returns
the unstarted prefetched messages at once, and lets running tasks finish for up
to ``shutdown_timeout_s``; after that, or on a second signal, running tasks are
cut short and their messages returned too. Nothing is acknowledged that did not
finish, so nothing is lost either way.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, cast

from petiole import discovery, revocation
from petiole.app import Petiole
from petiole.capabilities import offers
from petiole.config import Settings
from petiole.diagnosis import location
from petiole.errors import PetioleError
from petiole.execution import Rejected, TaskRunner, default_hostname
from petiole.logs import TASK_LOGGER
from petiole.pools.base import (
    ACK,
    LOST,
    REJECT,
    REQUEUE,
    REVOKED_TERMINATED,
    TIME_LIMIT,
    Job,
    Outcome,
    Resizable,
)
from petiole.ratelimit import TokenBucket
from petiole.task import parse_rate_limit
from petiole.transport import (
    AcksWhileReserving,
    Consumer,
    Consuming,
    Delivery,
    unsettled_return,
)
from petiole.worker import hooks
from petiole.worker.admission import Admission
from petiole.worker.autoscale import DEFAULT_IDLE_S, TICK_S, Bounds, ScalePolicy
from petiole.worker.hard_limits import HardLimits
from petiole.worker.held import HeldReporter
from petiole.worker.options import (
    check_autoscaling,
    consumed_queues,
    overridden,
    warn_of_unused,
)
from petiole.worker.read_turn import CHECK_S, LONG_TASK_S, NO_TURN, NoTurn, ReadTurn
from petiole.worker.retirement import Retirement
from petiole.worker.revocations import RevocationWatch
from petiole.worker.settle import Settler
from petiole.worker.shared_rates import SharedBucket, SharedRateLimits
from petiole.worker.short_results import ShortTaskResults
from petiole.worker.supervisor import EXIT_REPLACE_ME

logger = logging.getLogger("petiole.worker")
task_logger = logging.getLogger(TASK_LOGGER)

# Back-off after a failed reserve (broker down), doubling up to the cap.
_RESERVE_BACKOFF_S = (0.1, 5.0)
#: How long a worker stopped at once (a second signal) waits for the broker to take
#: its messages back and its acks before it exits all the same.
STOP_NOW_S = 5.0
_CONTROL_INTERVAL_S = 1.0
# Exit code of a worker one of whose threads died: a supervisor should restart it
# (EX_SOFTWARE, "internal software error").
EXIT_THREAD_DIED = 70


def user_task_names(app: Petiole) -> list[str]:
    """The tasks the app registers, without Petiole's own (``petiole.chord`` ...)."""
    return [name for name in app.tasks if not name.startswith("petiole.")]


class Worker:
    """Consumes ``queues`` of ``app`` until stopped.

    ``run()`` blocks and handles signals (the CLI's way); ``start()`` and
    ``stop()`` run it in background threads (the test fixtures' way).

    ``time_limit_s``, ``soft_time_limit_s``, ``max_tasks_per_child`` and
    ``max_memory_per_child_mb`` override the app's settings of those names for
    this worker (``self.settings``). ``exclude_queues`` are not consumed, even
    if ``queues`` (or the ``worker_queues`` setting) names them. ``autoscale``
    (``(MAX, MIN)``) lets a pool that can resize grow and shrink between the
    bounds, shrinking after an executor was idle for ``autoscale_idle_s``.
    ``supervised`` says a supervisor starts a fresh worker process when this one
    exits with :data:`EXIT_REPLACE_ME`: the worker then enforces the hard time
    limits of a pool that runs tasks in its own process (solo) by doing so;
    ``held`` is where it tells that supervisor what it reserves and runs
    (:mod:`petiole.worker.held`).
    """

    def __init__(
        self,
        app: Petiole,
        *,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
        prefetch_multiplier: int | None = None,
        shutdown_timeout_s: float | None = None,
        hostname: str | None = None,
        reserve_wait_s: float | None = None,
        exclude_queues: Sequence[str] | None = None,
        time_limit_s: float | None = None,
        soft_time_limit_s: float | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child_mb: float | None = None,
        autoscale: tuple[int, int] | None = None,
        autoscale_idle_s: float | None = None,
        supervised: bool = False,
        held: HeldReporter | None = None,
        read_turn: ReadTurn | None = None,
        rate_limits: SharedRateLimits | None = None,
    ) -> None:
        self.app = app
        # The tasks of app.autodiscover_tasks(...) packages and of the `imports` and
        # `include` settings, registered before anything asks whether a task is known.
        discovery.finalize(app, app.settings.task_modules)
        #: The app's settings with this worker's overrides.
        self.settings: Settings = overridden(
            app.settings,
            time_limit_s=time_limit_s,
            soft_time_limit_s=soft_time_limit_s,
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child_mb=max_memory_per_child_mb,
        )
        settings = self.settings
        self.queues = consumed_queues(list(queues or settings.queues), exclude_queues or ())
        self.hostname = hostname or default_hostname()
        self.bounds = None if autoscale is None else Bounds(*autoscale)
        self.autoscale_idle_s = DEFAULT_IDLE_S if autoscale_idle_s is None else autoscale_idle_s
        if self.bounds is not None:
            wanted = self.bounds.minimum
        else:
            wanted = concurrency or settings.worker_concurrency or os.cpu_count() or 1
        self.pool_name = pool or settings.worker_pool
        self.pool = app.plugins.get("pool", self.pool_name).component(wanted, settings)
        if self.bounds is not None:
            check_autoscaling(self.pool, self.pool_name, app.plugins, self.autoscale_idle_s)
        warn_of_unused(
            self.pool,
            self.pool_name,
            concurrency=concurrency,
            autoscaling=self.bounds is not None,
            recycling=bool(max_tasks_per_child or max_memory_per_child_mb),
            supervised=supervised,
        )
        self._policy: ScalePolicy | None = None  # made at start()
        self.concurrency: int = self.pool.concurrency
        # Jobs the pool takes per executor at once: one running, the rest queued in
        # it to start without waiting for us (Pool.submit: ``queue_depth``).
        self._queue_depth = max(1, int(getattr(self.pool, "queue_depth", 1)))
        self._multiplier = (
            settings.prefetch_multiplier if prefetch_multiplier is None else prefetch_multiplier
        )
        self._set_prefetch(self.concurrency)
        self.shutdown_timeout_s = (
            settings.shutdown_timeout_s if shutdown_timeout_s is None else shutdown_timeout_s
        )
        self.reserve_wait_s = settings.reserve_wait_s if reserve_wait_s is None else reserve_wait_s
        self.transport = app.transport
        # A pushing broker is consumed, any other reserved from (see _consume).
        self._consumer: Consuming | None = (
            self.transport if isinstance(self.transport, Consuming) else None
        )
        self.lease_s = max(settings.lease_s, self.transport.capabilities.min_lease_s)
        # Under a supervisor: what this process reserves and runs, so that the
        # supervisor returns the rest if it dies (only where leases would otherwise
        # keep them: a broker that ties them to a connection returns them itself).
        self._reporter = held if self.transport.capabilities.leases_expire else None
        # Shared with the other worker processes of a supervisor: reserve only in
        # turn (read_turn.py). Only where this thread runs each task itself (solo),
        # as a pool running tasks elsewhere keeps reserving while they run, and
        # only where the worker reserves (a pushing broker picks the consumer).
        reserves_inline = self.pool_name == "solo" and self._consumer is None
        self._turn: ReadTurn | NoTurn = NO_TURN
        if read_turn is not None and reserves_inline:
            self._turn = read_turn
        self.runner = TaskRunner(app, hostname=self.hostname)
        self.hooks = hooks.MessageHooks(app, self)
        self.settler = Settler(app, self.hostname)
        self.short_results = ShortTaskResults(app, self.settler)
        self.admission = Admission(app, settings, self.settler, self.hooks)
        self.counts = self.settler.counts
        self.revocations = RevocationWatch(app)
        self.settler.acks.on_sent = self._acks_sent
        # Acks ride on the next reserve where the transport can (see _reserve).
        self._acks_ride = offers(self.transport, AcksWhileReserving)
        self.settler.acks.rides = self._acks_ride

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # A pool that runs jobs inline (solo) must not run them on the transport's
        # thread, which a task's own publish may need (Pool.submit).
        self._dispatch_on_delivery = not getattr(self.pool, "runs_inline", False)
        # A supervised worker running tasks in its own thread stops a task (hard
        # limit, revoke with terminate) or recycles by giving way to a fresh process.
        self._supervised = supervised
        self._replaceable = supervised and getattr(self.pool, "runs_inline", False)
        self._hard_limits = HardLimits(self._hard_limit_passed) if self._replaceable else None
        recycles = settings.max_tasks_per_child or settings.max_memory_per_child_mb
        self._retirement = (
            Retirement(settings.max_tasks_per_child, settings.max_memory_per_child_mb)
            if self._replaceable and recycles
            else None
        )
        self._retiring = False
        self._held: dict[str, Delivery] = {}  # receipt -> delivery, every message we hold
        # receipt -> (when (monotonic) its lease ends, as last reserved or renewed; the
        # broker's data generation when it was reserved). Untracked: not to be renewed.
        self._lease_ends: dict[str, tuple[float, int | None]] = {}
        self._pending: collections.deque[Job] = collections.deque()  # prefetched, not started
        self._hands_back = self._one_at_a_time = False  # set by start()
        self._running: dict[str, Job] = {}
        # Receipts of running jobs whose message was acknowledged before they started
        # (acks_late=False): settled without the broker when they finish.
        self._acked_early: set[str] = set()
        # Jobs held back by their task's rate limit: (due, sequence, job).
        self._deferred: list[tuple[float, int, Job]] = []
        self._sequence = itertools.count()
        self._buckets: dict[str, TokenBucket | SharedBucket | None] = {}
        self._shared_rates = rate_limits  # a supervisor's, shared by its worker processes
        self._wakeup: threading.Timer | None = None
        self._dispatching = threading.local()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._push_consumer: Consumer | None = None  # the one open, when the transport pushes
        self._autoscaler: threading.Thread | None = None
        self._signals_seen = 0
        # Set when a worker thread died: the worker stops and ``run`` exits non-zero.
        self.fatal_error: BaseException | None = None
        #: Called just before a second signal ends the process at once (``os._exit``),
        #: where no ``finally`` block or ``atexit`` handler runs: the CLI removes its
        #: pidfile here.
        self.on_exit_now: list[Callable[[], None]] = []

    def _set_prefetch(self, size: int) -> None:
        """Hold at most ``size`` x the multiplier messages (call with the lock held,
        or before the worker starts)."""
        multiplier = self._multiplier
        if multiplier > 1:
            # A pool whose executors queue jobs (processes: queue_depth 4) takes
            # size x queue_depth jobs at once; the multiplier applies to those, so
            # that messages still wait here beyond what the pool holds and a reserve
            # brings a batch worth its round trip (measured: docs/worker.md). A
            # multiplier of 1 still holds one message per executor, none queued.
            multiplier *= self._queue_depth
        prefetch = max(size, size * multiplier)
        if self.bounds is not None and size < self.bounds.maximum:
            # One message more than the pool can start, whatever the multiplier: work
            # waiting is what tells the autoscaler to grow.
            prefetch = max(prefetch, size + 1)
        self.prefetch: int = prefetch
        # Reserve when half the prefetch is free (or nothing is queued to run next):
        # one reserve per ~prefetch/2 tasks instead of one per finished task.
        self._reserve_at = max(1, prefetch // 2)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the pool, the consumer, the lease keeper, the control thread and,
        when autoscaling, the autoscaler."""
        if not getattr(self.pool, "runs_in_children", False):
            hooks.process_init(self.app, self.pool_name)  # tasks run in this process
        self.pool.start(self.runner)
        self.short_results.enable(runs_inline=not self._dispatch_on_delivery)
        # An inline pool runs what it reserves one by one: it holds a prefetch's worth
        # only while its tasks are short, and hands back what waits behind one that
        # may run long (_start_pending); until a first task ran, it reserves one. (A
        # pushing broker fills the prefetch window itself: not there.)
        self._hands_back = (
            not self._dispatch_on_delivery
            and self._consumer is None
            and self.prefetch > 1
            and not self.transport.capabilities.deduplicates_copies
        )
        self._one_at_a_time = self._hands_back
        self.settler.acks.start()
        self.revocations.poll()
        self.app.plugins.hook.petiole_worker_start(worker=self)
        self._threads = [
            self._thread(self._consume, "petiole-consumer"),
            self._thread(self._keep_leases, "petiole-leases"),
            self._thread(self._control, "petiole-control"),
        ]
        if isinstance(self._turn, ReadTurn):
            self._threads.append(self._thread(self._watch_turn, "petiole-turn"))
        if self.bounds is not None:
            self._policy = ScalePolicy(
                self.bounds, idle_s=self.autoscale_idle_s, now=time.monotonic()
            )
            self._autoscaler = self._thread(self._autoscale, "petiole-autoscale")
            self._threads.append(self._autoscaler)
        for thread in self._threads:
            thread.start()
        bounds = self.bounds
        logger.info(
            "worker %s ready: queues=%s pool=%sx%d%s prefetch=%d lease=%gs broker=%s backend=%s",
            self.hostname,
            ",".join(self.queues),
            self.pool_name,
            self.concurrency,
            f" (autoscale {bounds.minimum}-{bounds.maximum})" if bounds else "",
            self.prefetch,
            self.lease_s,
            location(self.transport, self.app.settings.broker_url),
            location(self.app.backend, self.app.settings.backend_url),
        )
        user_tasks = user_task_names(self.app)
        if not user_tasks:
            logger.warning(
                "the app %r registers no tasks: every message received will be dead-lettered "
                "as unregistered; start the worker with -A naming the module that defines "
                "your tasks (or set `app` in petiole.toml)",
                self.app.main_path or self.app.name,
            )
        else:
            quiet = not task_logger.isEnabledFor(logging.INFO)
            logger.info(
                "tasks: %s%s",
                ", ".join(sorted(user_tasks)),
                " (failures are logged; -l INFO logs every task received and finished)"
                if quiet
                else "",
            )
            self._warn_of_tasks_outliving_their_delivery(user_tasks)

    def _warn_of_tasks_outliving_their_delivery(self, names: list[str]) -> None:
        """Tasks whose hard time limit is longer than the broker lets a delivery stay
        unacknowledged (``capabilities.max_unsettled_s``): past it, the broker gives
        the message to another worker while the first still runs it."""
        limit = self.transport.capabilities.max_unsettled_s
        if limit is None:
            return
        settings = self.settings
        too_long = []
        for name in sorted(names):
            hard = self.app.tasks[name].options.time_limit_s
            hard = settings.time_limit_s if hard is None else hard
            if hard is not None and hard > limit:
                too_long.append(f"{name} ({hard:g} s)")
        if too_long:
            logger.warning(
                "the broker takes a message back once it has been unacknowledged for "
                "%g s (RabbitMQ's consumer_timeout), but these tasks may run longer: %s. "
                "Past that, another worker runs the task again while this one still does. "
                "Lower their time_limit_s, or raise the broker's limit and the "
                "transport's option that states it (petiole-amqp: consumer_timeout_s).",
                limit,
                ", ".join(too_long),
            )

    def run(
        self,
        *,
        ready: Callable[[], None] | None = None,
        stop_signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    ) -> int:
        """Run until one of ``stop_signals`` (in the main thread) or :meth:`stop`; return
        an exit code. ``ready`` is called once the worker consumes (``--detach`` waits
        for it). A second stop signal stops at once."""
        # Tried rather than checked: under eventlet the main green thread is not
        # threading.main_thread(), yet it may install handlers.
        try:
            for signum in stop_signals:
                signal.signal(signum, self._on_signal)
            # One sent before the handler was in place (and blocked meanwhile, as a
            # supervisor starts its worker processes) is delivered now.
            if hasattr(signal, "pthread_sigmask"):  # POSIX
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        except ValueError:
            pass  # not the main OS thread: whoever runs us stops us with stop()
        self.start()
        if ready is not None:
            ready()
        while not self._stopping.wait(0.5):
            pass
        self._shutdown()
        if self.fatal_error is not None:
            return EXIT_THREAD_DIED
        return EXIT_REPLACE_ME if self._retiring else 0

    def _thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        """A worker thread that, should it ever die, stops the worker instead of
        leaving a process that renews leases and runs nothing."""

        def guarded() -> None:
            try:
                target()
            except BaseException as exc:
                self._thread_died(name, exc)

        return threading.Thread(target=guarded, name=name, daemon=True)

    def _thread_died(self, name: str, exc: BaseException) -> None:
        logger.critical(
            "worker thread %s died (%s: %s); stopping the worker so its supervisor restarts "
            "it (exit code %d); its messages return to the queue",
            name,
            type(exc).__name__,
            exc,
            EXIT_THREAD_DIED,
            exc_info=exc,
        )
        if self.fatal_error is None:
            self.fatal_error = exc
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()

    def stop(self) -> None:
        """Graceful stop (as SIGTERM): return unstarted messages, let running tasks finish."""
        self._shutdown()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals_seen += 1
        # A supervised worker is stopped by its supervisor, whatever signal it got.
        name = "the supervisor's stop" if self._supervised else signal.Signals(signum).name
        if self._signals_seen == 1:
            logger.info(
                "%s: finishing %d running task(s) (up to %.0f s), returning the rest; "
                "send it again to stop at once",
                name,
                len(self._running),
                self.shutdown_timeout_s,
            )
            self._stopping.set()
        else:
            logger.warning("%s again: stopping now; running tasks go back to the queue", name)
            self.pool.terminate()
            # Settled on a thread the exit does not wait for beyond STOP_NOW_S: a
            # broker that does not answer must not keep a process asked twice to stop.
            settling = threading.Thread(target=self._settle_before_exit, daemon=True)
            settling.start()
            settling.join(STOP_NOW_S)
            if settling.is_alive():
                logger.warning(
                    "the broker did not take the messages back within %g s; they come back %s",
                    STOP_NOW_S,
                    unsettled_return(self.transport),
                )
            for callback in self.on_exit_now:
                callback()
            os._exit(0)

    def _settle_before_exit(self) -> None:
        self._return_all_held()
        self.settler.acks.flush(timeout_s=STOP_NOW_S)  # finished tasks must not run again

    def _shutdown(self) -> None:
        if self._stopped.is_set():
            return
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._consumer is None:
            # Unstarted messages go back at once, not after the consumer's current reserve.
            self._return_pending()
        deadline = time.monotonic() + self.shutdown_timeout_s
        consumer_done = True
        # A push consumer is closed first: it would hand returned messages straight back.
        if self._threads and self._threads[0] is not threading.current_thread():
            # An inline pool (solo) runs its task in this thread: waited for within the
            # shutdown timeout, as a pool's running tasks are, since a task that never
            # returns must not hold the worker for ever. Other pools' consumer thread
            # only reserves, which ends by itself.
            inline = not self._dispatch_on_delivery
            self._threads[0].join(self.shutdown_timeout_s if inline else None)
            consumer_done = not self._threads[0].is_alive()
        self._return_pending()
        autoscaler = self._autoscaler  # no resizing while the pool stops
        if autoscaler is not None and autoscaler is not threading.current_thread():
            autoscaler.join()
        if not consumer_done and self._push_consumer is not None:
            # Its thread runs a task that outlived the timeout and cannot close it:
            # closed here, it hands nothing back of what is returned below.
            self._push_consumer.close()
        remaining_s = max(0.0, deadline - time.monotonic())
        finished = consumer_done and self.pool.stop(timeout_s=remaining_s)
        if not finished:
            logger.warning(
                "running tasks did not finish within %.0f s; returning them to the queue",
                self.shutdown_timeout_s,
            )
            self.pool.terminate()
            self._return_all_held()
        self.short_results.flush()
        self.settler.acks.close()
        self._stopped.set()
        if self._wakeup is not None:
            self._wakeup.cancel()
        for thread in self._threads[1:]:
            if thread is not threading.current_thread():
                thread.join()
        self.app.plugins.hook.petiole_worker_stop(worker=self)
        logger.info("worker %s stopped: %s", self.hostname, dict(self.counts))

    # -- consuming ---------------------------------------------------------------

    def _consume(self) -> None:
        if self._consumer is not None:
            self._consume_pushed(self._consumer)
        else:
            self._consume_reserved()

    def _consume_reserved(self) -> None:
        """Reserve whenever enough of the prefetch is free (see :meth:`_free_to_reserve`),
        in turn with the other worker processes of a supervisor (read_turn.py)."""
        try:
            self._reserve_while_running(self._turn)
        finally:
            self._turn.give()

    def _reserve_while_running(self, turn: ReadTurn | NoTurn) -> None:
        backoff = _RESERVE_BACKOFF_S[0]
        while not self._stopping.is_set():
            with self._changed:
                free = self._free_to_reserve()
                if free == 0:
                    turn.give()  # no room: another process reserves meanwhile
                    self._changed.wait(timeout=0.5)
                    continue
            if not turn.take(self._stopping):
                return
            reserved_at = time.monotonic()
            generation = self._data_generation()
            try:
                deliveries = self._reserve(free)
            except PetioleError as exc:
                turn.give()
                logger.error(
                    "cannot reserve from the broker (%s); retrying in %.1f s", exc, backoff
                )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _RESERVE_BACKOFF_S[1])
                continue
            backoff = _RESERVE_BACKOFF_S[0]
            turn.reserved(len(deliveries))
            for delivery in deliveries:
                self._accept_guarded(delivery, (reserved_at + self.lease_s, generation))
            if self._reporter is not None and deliveries:
                self._report_held(self._reporter)
            self._dispatch()

    def _reserve(self, free: int) -> list[Delivery]:
        """Reserve up to ``free`` messages, carrying the due ack batch when the
        transport can (:class:`AcksWhileReserving`, :meth:`AckBatcher.take`):
        finished tasks are acknowledged in the request that asks for the next."""
        acks = self.settler.acks.take() if self._acks_ride else []
        if not acks:
            return self.transport.reserve(
                self.queues, max_messages=free, wait_s=self.reserve_wait_s, lease_s=self.lease_s
            )
        try:
            got = cast(AcksWhileReserving, self.transport).ack_and_reserve(
                [delivery for delivery, _ in acks],
                self.queues,
                max_messages=free,
                wait_s=self.reserve_wait_s,
                lease_s=self.lease_s,
            )
        except BaseException as exc:
            self.settler.acks.taken_sent(acks, exc)
            raise
        self.settler.acks.taken_sent(acks, None)
        return got

    def _consume_pushed(self, transport: Consuming) -> None:
        """Let the broker push, ``prefetch`` unsettled messages at most (the broker
        keeps count, acks still in the batcher included); close the consumer on stop.
        When autoscaling changes the prefetch, the consumer is closed and opened
        again with the new window; the messages the old one delivered stay held, on
        top of the new window until they are settled (bounded by the old window)."""
        while not self._stopping.is_set():
            prefetch = self.prefetch
            consumer = self._open_consumer(transport, prefetch)
            if consumer is None:
                return
            self._push_consumer = consumer
            try:
                if self._dispatch_on_delivery:
                    with self._changed:
                        while not self._stopping.is_set() and self.prefetch == prefetch:
                            self._changed.wait(timeout=0.5)
                else:
                    self._dispatch_here()
            finally:
                consumer.close()  # no delivery after this: shutdown then returns what is pending

    def _open_consumer(self, transport: Consuming, prefetch: int) -> Consumer | None:
        """A consumer with this prefetch window, retried with back-off while the
        broker cannot be reached; None if the worker stops first."""
        backoff = _RESERVE_BACKOFF_S[0]
        while not self._stopping.is_set():
            try:
                return transport.consume(
                    self.queues, prefetch=prefetch, lease_s=self.lease_s, on_delivery=self._pushed
                )
            except PetioleError as exc:
                logger.error(
                    "cannot start consuming from the broker (%s); retrying in %.1f s", exc, backoff
                )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _RESERVE_BACKOFF_S[1])
        return None

    def _dispatch_here(self) -> None:
        """Start pending jobs from this (the consumer's) thread, for a pool that runs
        them inline: woken by each delivery."""
        while not self._stopping.is_set():
            with self._changed:
                if not self._pending:
                    self._changed.wait(timeout=0.5)
            self._dispatch()

    def _pushed(self, delivery: Delivery) -> None:
        """``on_delivery``, on the transport's thread: file the message, start what can."""
        now = time.monotonic()
        if delivery.lease_expires_at:
            lease_ends = now + max(delivery.lease_expires_at - time.time(), 0.0)
        else:
            lease_ends = now + self.lease_s
        self._accept_guarded(delivery, (lease_ends, self._data_generation()))
        if self._dispatch_on_delivery:
            self._dispatch()
        else:
            with self._changed:
                self._changed.notify_all()

    def _accept_guarded(self, delivery: Delivery, lease: tuple[float, int | None]) -> None:
        try:
            self._accept(delivery, lease)
        except Exception as exc:
            # A check that fails on a message must not take the consumer with it.
            logger.exception("internal error checking a message from %r", delivery.queue)
            self.admission.refuse(
                delivery,
                "internal",
                f"the worker failed to check it: {type(exc).__name__}: {exc} "
                "(a bug in petiole; `petiole dlq requeue` once fixed)",
            )

    def _free_to_reserve(self) -> int:
        """How many messages to reserve now; 0 = wait (call with the lock held)."""
        # Finished tasks whose acks wait for their batch still hold their messages, but
        # only a batch's worth beyond the prefetch counts: counting every one would
        # cap a worker at ``prefetch`` tasks per ack window (8 per 5 ms by default).
        acks = self.settler.acks
        free = self.prefetch - len(self._held) - max(0, acks.pending() - acks.max_batch)
        if self._one_at_a_time:
            free = min(free, 1)
        if free >= self._reserve_at or (free > 0 and not self._pending):
            return free
        return 0

    def _acks_sent(self) -> None:
        """Acknowledged messages no longer count against the prefetch: wake the consumer."""
        with self._changed:
            if self._free_to_reserve():
                self._changed.notify_all()

    def _accept(self, delivery: Delivery, lease: tuple[float, int | None]) -> None:
        """Check a message using only its headers; queue it to run, or settle it now.
        ``lease`` is when (monotonic) its lease runs out unless renewed, and the
        broker's data generation when it was reserved."""
        job = self.admission.check(delivery)
        if job is None:
            return
        with self._lock:
            self._held[delivery.receipt] = delivery
            self._lease_ends[delivery.receipt] = lease
            self._pending.append(job)
        if self.hooks.received is not None:
            self.hooks.received(worker=self, job=job)
        if self._stopping.is_set():
            self._return_pending()

    # -- dispatching ------------------------------------------------------------------

    def _bucket(self, task_name: str) -> TokenBucket | SharedBucket | None:
        """The rate limit of ``task_name``: the supervisor's shared bucket, else this
        process's own; None when the task has no rate limit."""
        if task_name not in self._buckets:
            shared = self._shared_rates
            bucket: TokenBucket | SharedBucket | None = None
            if shared is not None:
                bucket = shared.bucket(task_name)
            if bucket is None:
                task = self.app.tasks.get(task_name)
                limit = task.options.rate_limit if task is not None else None
                bucket = TokenBucket(parse_rate_limit(limit)) if limit else None
            self._buckets[task_name] = bucket
        return self._buckets[task_name]

    def _next_job(self) -> Job | None:
        """The next job allowed to start now (call with the lock held)."""
        now = time.monotonic()
        while self._deferred and self._deferred[0][0] <= now:
            self._pending.appendleft(heapq.heappop(self._deferred)[2])
        while self._pending:
            job = self._pending.popleft()
            bucket = self._bucket(job.envelope.task_name)
            wait_s = bucket.take() if bucket is not None else 0.0
            if wait_s == 0.0:
                return job
            heapq.heappush(self._deferred, (now + wait_s, next(self._sequence), job))
        if self._deferred:
            self._wake_at(self._deferred[0][0] - now)
        return None

    def _wake_at(self, delay_s: float) -> None:
        """Dispatch again when the earliest rate-limited job may start."""
        wakeup = self._wakeup
        # The timer's own dispatch (which may run a solo pool's task inline) asks for
        # the next wake-up while its thread is still alive: it must get a new timer, or
        # the jobs deferred again wait for a dispatch nothing else may ever start.
        if wakeup is not None and wakeup.is_alive() and wakeup is not threading.current_thread():
            return
        self._wakeup = threading.Timer(max(delay_s, 0.001), self._dispatch)
        self._wakeup.daemon = True
        self._wakeup.start()

    def _dispatch(self) -> None:
        """Hand pending jobs to free pool slots. Re-entrant calls (a solo pool
        finishing a job inside ``submit``) are absorbed by the outer loop."""
        if getattr(self._dispatching, "active", False):
            return
        self._dispatching.active = True
        # A pool that can (processes) sends the jobs started here together, at the
        # end: one write per child rather than one per job.
        batch = getattr(self.pool, "batch", None)
        try:
            with batch() if batch is not None else contextlib.nullcontext():
                self._start_pending()
            self.short_results.flush()  # nothing more to start now: store what waits
        finally:
            self._dispatching.active = False

    def _start_pending(self) -> None:
        """Submit pending jobs until the pool is full or none may start now."""
        while not self._stopping.is_set():
            with self._lock:
                if len(self._running) >= self.concurrency * self._queue_depth:
                    return
                job = self._next_job()
                if job is None:
                    return
                self._running[job.receipt] = job
            if not self._lease_still_held(job):
                continue
            name = job.envelope.task_name
            if self.revocations.active and self.revocations.is_revoked(job.envelope.task_id):
                task_logger.info("task %s[%s] revoked: not run", name, job.envelope.task_id)
                self._finish(job, Outcome(ACK, "REVOKED", "revoked before it started"))
                self.hooks.revoked(job.envelope, terminated=False)
                continue
            if self._acks_early(job) and not self._ack_before_running(job):
                continue
            if self._reporter is not None:
                self._report_running(self._reporter, job)
            if self.short_results.enabled:
                self._hold_result_if_short(job)
            turn = self._turn
            if self._hands_back and not self.short_results.runs_under(name, LONG_TASK_S):
                self._hand_back_pending()  # what it reserves next: decided by _on_done
            if not self.short_results.is_short(name):
                turn.give()  # it may run long: another process reserves meanwhile
            turn.task_started()
            try:
                if self._hard_limits is None or job.time_limit_s is None:
                    self.pool.submit(job, self._on_done)
                else:
                    self.pool.submit(job, self._hard_limits.guard(job, self._on_done))
            finally:
                turn.task_ended()

    def _hand_back_pending(self) -> None:
        """A task that may run long starts in this inline pool: the jobs queued
        behind it go back to their queue, for another worker process (or worker)
        to run now instead of after it (see "Prefetch" in docs/worker.md)."""
        held = [(d, job.envelope) for d, job in self._release_pending(deferred_too=False)]
        if held:
            logger.debug("handing %d message(s) back: a task that may run long starts", len(held))
            self.settler.hand_back(held)
            if self._reporter is not None:  # the supervisor must not return them if we die
                self._report_held(self._reporter)

    def _hold_result_if_short(self, job: Job) -> None:
        """Before ``job`` starts: a short task's result waits to be stored with
        others when more jobs wait behind it or results wait already; any other
        task's start stores the results waiting first (see short_results.py)."""
        results = self.short_results
        if not results.is_short(job.envelope.task_name):
            results.flush()
            return
        with self._lock:
            behind = bool(self._pending)
            acked = job.receipt in self._acked_early  # no ack left to hold back
        job.defer_result = not acked and (behind or results.holding())

    def _report_held(self, reporter: HeldReporter) -> None:
        """Tell the supervisor every message held now (after a reserve)."""
        with self._lock:
            held = list(self._held.values())
        reporter.held(held)

    def _report_running(self, reporter: HeldReporter, job: Job) -> None:
        """Tell the supervisor what runs now that ``job`` starts."""
        if self.concurrency * self._queue_depth == 1:
            reporter.running((job.receipt,))  # solo: this one alone, no copy
            return
        with self._lock:
            running = list(self._running)
        reporter.running(running)

    def _acks_early(self, job: Job) -> bool:
        """Whether this job's task acknowledges before it runs (``acks_late=False``)."""
        task = self.app.tasks.get(job.envelope.task_name)
        late = task.options.acks_late if task is not None else None
        return not (self.settings.acks_late if late is None else late)

    def _ack_before_running(self, job: Job) -> bool:
        """``acks_late=False``: acknowledge the message now, then run the task (at
        most once). Returns whether the job may run.

        A body that cannot be decoded is dead-lettered instead, as it would be after
        a late ack: the early ack must not throw bad input away. A message whose
        acknowledgement the broker does not take is not run now (it comes back, and
        running it here too could run it twice)."""
        try:
            self.runner.check_body(job.envelope)
        except Rejected as exc:
            self._finish(job, Outcome(REJECT, reason=str(exc)))
            self.hooks.rejected(job.queue, "undecodable", str(exc), job.envelope)
            return False
        with self._lock:
            delivery = self._held.pop(job.receipt, None)
            self._lease_ends.pop(job.receipt, None)
        acked = False
        if delivery is not None:
            try:
                self.transport.ack(delivery)
                acked = True
            except PetioleError as exc:
                logger.error(
                    "could not acknowledge task %s[%s] before running it (acks_late=False): "
                    "%s; it does not run now and comes back %s",
                    job.envelope.task_name,
                    job.envelope.task_id,
                    exc,
                    unsettled_return(self.transport),
                )
        if not acked:
            with self._changed:
                self._running.pop(job.receipt, None)
                self._changed.notify_all()
            return False
        with self._lock:
            self._acked_early.add(job.receipt)
        return True

    def _on_done(self, job: Job, outcome: Outcome) -> None:
        try:
            if outcome.runtime_s > 0:  # the task ran (not refused, not revoked first)
                name = job.envelope.task_name
                self.short_results.ran(name, outcome.runtime_s)
                if self._hands_back:  # what it ran last says how much to reserve next
                    self._one_at_a_time = not self.short_results.runs_under(name, LONG_TASK_S)
            self._finish(job, outcome)
            if outcome.cause == "revoked":  # a job queued in the pool, revoked before it started
                self.hooks.revoked(job.envelope, terminated=False)
            if self._retirement is not None:
                self._retire_if_due(self._retirement)
            self._dispatch()
        except Exception as exc:
            # Settling runs in a pool thread; that thread must not die with the error.
            self._thread_died(threading.current_thread().name, exc)

    def _retire_if_due(self, retirement: Retirement) -> None:
        why = retirement.after_task()
        if why is None or self._retiring:
            return
        logger.info(
            "worker %s %s: stopping for its supervisor to start a fresh one", self.hostname, why
        )
        self._retiring = True
        self._stopping.set()

    def _hard_limit_passed(self, job: Job) -> None:
        """``job``, running in this process, passed its hard time limit: record it as
        failed and give way to a fresh process."""
        logger.error(
            "task %s[%s] passed its hard time limit of %s s; recording it as failed and "
            "replacing this worker process (the %s pool runs tasks in it)",
            job.envelope.task_name,
            job.envelope.task_id,
            job.time_limit_s,
            self.pool_name,
        )
        reason = (
            f"exceeded its time limit of {job.time_limit_s} s; "
            "the worker process running it was replaced"
        )
        self._replace_now(job, Outcome(TIME_LIMIT, reason=reason))

    def _replace_now(self, job: Job, outcome: Outcome) -> None:
        """Settle ``job`` (running in this process, its thread beyond stopping) with
        ``outcome``, return every other message held, and exit for the supervisor to
        start a fresh process."""
        self._stopping.set()  # nothing more is reserved or started
        self._finish(job, outcome)
        self._return_all_held()
        self.short_results.flush()
        self.settler.acks.flush(timeout_s=5.0)  # finished tasks must not run again
        if outcome.cause == "terminated":
            # Last: the task's thread runs on until the exit and may have written a
            # state of its own (update_state) since the settle recorded REVOKED.
            self._record_terminated(job, outcome.reason)
        for callback in self.on_exit_now:
            callback()
        logging.shutdown()
        os._exit(EXIT_REPLACE_ME)

    def _finish(self, job: Job, outcome: Outcome) -> None:
        # Released before settling, so the lease keeper stops renewing a message
        # that is about to be acknowledged (and does not warn when renewal fails).
        with self._lock:
            delivery = self._held.pop(job.receipt, None)
            self._lease_ends.pop(job.receipt, None)
            acked_early = job.receipt in self._acked_early
            self._acked_early.discard(job.receipt)
        if delivery is not None:
            self._settle(delivery, job, outcome)
        else:
            if outcome.record is not None:  # its message was lost meanwhile: store it anyway
                self.short_results.store_now(outcome.record)
            if acked_early:
                self.settler.after_early_ack(job, outcome)
        with self._changed:
            self._running.pop(job.receipt, None)
            if self._free_to_reserve():
                self._changed.notify_all()

    def _settle(self, delivery: Delivery, job: Job, outcome: Outcome) -> None:
        settler = self.settler
        if outcome.kind == ACK:
            count_as = outcome.state.lower() or "done"
            if outcome.cause == "terminated":  # before the ack: the state must be final
                self._record_terminated(job, outcome.reason)
            if outcome.record is None:
                settler.ack(delivery, count_as=count_as)
            else:  # stored with others before its ack (_hold_result_if_short)
                self.short_results.hold(delivery, count_as, outcome.record)
        elif outcome.kind == REJECT:
            # Refused before it ran (a cause, no state): its task stored nothing. One
            # that ran stored its own state; an internal error may come after that.
            refused = bool(outcome.cause) and not outcome.state
            settler.dead_letter(delivery, outcome.reason, not_run=job.envelope if refused else None)
            if outcome.cause:
                self.hooks.rejected(delivery.queue, outcome.cause, outcome.reason, job.envelope)
        elif outcome.kind == REQUEUE:
            settler.requeue(delivery, delay_s=outcome.delay_s)
        elif outcome.kind == LOST:
            settler.lost(delivery, job, outcome.reason)
        elif outcome.kind == TIME_LIMIT:
            settler.time_limit(delivery, job, outcome.reason)

    def _record_terminated(self, job: Job, reason: str) -> None:
        try:
            revocation.record_terminated(self.app, job.envelope.task_id, reason)
        except PetioleError as exc:  # the result store is down: revoke()'s own record stands
            logger.error("could not record task %s REVOKED: %s", job.envelope.task_id, exc)

    # -- returning messages -----------------------------------------------------------

    def _return_pending(self) -> None:
        self.settler.return_all(d for d, _ in self._release_pending(deferred_too=True))

    def _release_pending(self, *, deferred_too: bool) -> list[tuple[Delivery, Job]]:
        """Take the jobs not started (and those a rate limit deferred) out of this
        worker's hands: their deliveries, no longer held or renewed, to settle."""
        with self._lock:
            jobs = list(self._pending)
            self._pending.clear()
            if deferred_too:
                jobs += [job for _, _, job in self._deferred]
                self._deferred.clear()
            released = [(self._held.pop(j.receipt), j) for j in jobs if j.receipt in self._held]
            for job in jobs:
                self._lease_ends.pop(job.receipt, None)
        return released

    def _return_all_held(self) -> None:
        with self._lock:
            deliveries = list(self._held.values())
            self._held.clear()
            self._lease_ends.clear()
            self._pending.clear()
            self._deferred.clear()
        self.settler.return_all(deliveries)

    # -- leases and control --------------------------------------------------------------

    def _watch_turn(self) -> None:
        """Give the read turn up when a task runs long with it held (read_turn.py)."""
        turn = self._turn
        assert isinstance(turn, ReadTurn)
        while not self._stopped.is_set():
            if turn.wait_held(timeout_s=0.5):
                turn.give_if_task_long()
                self._stopped.wait(CHECK_S)

    def _keep_leases(self) -> None:
        # Also where leases do not expire: there extend only asks whether the connection
        # that delivered a message still holds it, and a lost one is handled the same way.
        interval = self.lease_s / 3
        while not self._stopped.wait(interval):
            with self._lock:
                held = [d for r, d in self._held.items() if r in self._lease_ends]
            lost: list[Delivery] = []
            for delivery in held:
                try:
                    renewed_at = time.monotonic()
                    if self.transport.extend(delivery, lease_s=self.lease_s):
                        self._renewed(delivery, renewed_at + self.lease_s)
                    elif self._holds(delivery):
                        # (A message settled since the snapshot also fails to extend: not news.)
                        lost.append(delivery)
                except PetioleError as exc:
                    logger.error("could not renew a lease (%s); retrying in %.0f s", exc, interval)
            if lost:
                self._leases_lost(lost)

    def _renewed(self, delivery: Delivery, lease_ends: float) -> None:
        with self._lock:
            lease = self._lease_ends.get(delivery.receipt)
            if lease is not None:
                self._lease_ends[delivery.receipt] = (lease_ends, lease[1])

    def _data_generation(self) -> int | None:
        """The broker's count of times it was found to have lost its data (a Redis
        restarted without persistence), for transports that detect it."""
        generation = getattr(self.transport, "data_generation", None)
        return generation if isinstance(generation, int) else None

    def _lease_still_held(self, job: Job) -> bool:
        """Before a job starts: if its lease may have run out (the worker was stalled:
        SIGSTOP, swapping, a long GC), renew it first; a lease another worker took
        means that worker owns the message now, and this one drops it unrun."""
        with self._lock:
            lease = self._lease_ends.get(job.receipt)
            delivery = self._held.get(job.receipt)
        # Renewals run every lease_s/3; a lease with less than that left missed one.
        if delivery is None or lease is None:
            return True
        if lease[0] - time.monotonic() > self.lease_s / 3:
            return True
        try:
            renewed_at = time.monotonic()
            if self.transport.extend(delivery, lease_s=self.lease_s):
                self._renewed(delivery, renewed_at + self.lease_s)
                return True
        except PetioleError as exc:
            logger.error(
                "could not renew the lease of task %s before starting it (%s); starting it",
                job.envelope.task_id,
                exc,
            )
            return True
        self._leases_lost([delivery], starting=job)
        return False

    def _leases_lost(self, deliveries: list[Delivery], *, starting: Job | None = None) -> None:
        """These messages' leases ran out and may belong to another worker now.
        Those not started (``starting`` is one the dispatcher was about to start) are
        dropped unrun — the new owner runs them; those running finish, but may run
        twice. Both are logged with their task ids."""
        receipts = self._vanished_with_the_data({d.receipt for d in deliveries})
        if not receipts:
            if starting is not None:  # it stays this worker's to run
                with self._lock:
                    self._running.pop(starting.receipt, None)
                    self._pending.appendleft(starting)
            return
        with self._changed:
            unstarted = [job for job in self._pending if job.receipt in receipts]
            unstarted += [job for _, _, job in self._deferred if job.receipt in receipts]
            if unstarted:
                dropped = {job.receipt for job in unstarted}
                self._pending = collections.deque(
                    job for job in self._pending if job.receipt not in dropped
                )
                self._deferred = [item for item in self._deferred if item[2].receipt not in dropped]
                heapq.heapify(self._deferred)
            if starting is not None:
                self._running.pop(starting.receipt, None)
                unstarted.append(starting)
            for job in unstarted:
                self._held.pop(job.receipt, None)
                self._lease_ends.pop(job.receipt, None)
            running = [self._running[r].envelope.task_id for r in receipts if r in self._running]
            self._changed.notify_all()
        # The broker does not say which: a purge deletes leased messages too.
        why = (
            f"the worker stalled longer than lease_s={self.lease_s:g} s and another worker "
            "took them, or the queue was purged"
        )
        if unstarted:
            self.counts["lease_lost"] += len(unstarted)
            logger.warning(
                "lost the leases of %d prefetched task(s) (%s); not running them: %s",
                len(unstarted),
                why,
                ", ".join(job.envelope.task_id for job in unstarted),
            )
        if running:
            logger.warning(
                "lost the leases of %d running task(s) (%s); taken by another worker, "
                "they may run twice: %s",
                len(running),
                why,
                ", ".join(running),
            )

    def _vanished_with_the_data(self, receipts: set[str]) -> set[str]:
        """Of these lost leases, those of messages the broker lost with its data are
        no longer anywhere but here: no other worker can run them, so this one does
        (their leases are no longer renewed). Returns the others: taken by another
        worker."""
        now = self._data_generation()
        if now is None:
            return receipts
        with self._lock:
            vanished = [
                r for r in receipts if r in self._lease_ends and self._lease_ends[r][1] != now
            ]
            ids = [self._task_id_held(r) for r in vanished]
            for receipt in vanished:
                del self._lease_ends[receipt]
        if vanished:
            self.counts["lost_with_broker_data"] += len(vanished)
            logger.error(
                "the broker lost its data (it restarted without persistence): %d task(s) this "
                "worker holds are gone from it; running them here, since no other worker has "
                "them: %s",
                len(vanished),
                ", ".join(ids),
            )
        return receipts - set(vanished)

    def _task_id_held(self, receipt: str) -> str:
        """The task id of a held message (call with the lock held)."""
        for job in (*self._pending, *self._running.values(), *(j for _, _, j in self._deferred)):
            if job.receipt == receipt:
                return job.envelope.task_id
        return f"(receipt {receipt})"

    def _control(self) -> None:
        """Follow revocations; terminate running tasks revoked with ``terminate``."""
        while not self._stopped.wait(_CONTROL_INTERVAL_S):
            if not self.revocations.poll():
                continue
            with self._lock:
                running = {job.envelope.task_id: job for job in self._running.values()}
            cancel = getattr(self.pool, "cancel", None)
            for task_id in self.revocations.to_terminate(running):
                job = running[task_id]
                if cancel is not None and cancel(job.receipt):
                    logger.info("terminated revoked task %s", task_id)
                    self.hooks.revoked(job.envelope, terminated=True)
                elif self._replaceable:
                    logger.info(
                        "terminating revoked task %s: replacing this worker process", task_id
                    )
                    self.hooks.revoked(job.envelope, terminated=True)
                    self._replace_now(job, REVOKED_TERMINATED)
                else:
                    logger.warning(
                        "task %s was revoked with terminate, but the %s pool cannot stop a "
                        "running task; it will finish",
                        task_id,
                        self.pool_name,
                    )

    # -- autoscaling ------------------------------------------------------------------

    def _autoscale(self) -> None:
        """Every TICK_S, resize the pool to what the policy asks for."""
        policy = self._policy
        assert policy is not None
        while not self._stopping.wait(TICK_S):
            with self._lock:
                demand = len(self._running) + len(self._pending)
            size = policy.size_for(demand, self.concurrency, time.monotonic())
            if size != self.concurrency and not self._stopping.is_set():
                self.resize(size)

    def resize(self, size: int) -> None:
        """Resize the pool (it must be :class:`~petiole.pools.base.Resizable`) and
        the prefetch with it. Growing waits for the new executors to be ready."""
        pool = self.pool
        assert isinstance(pool, Resizable), "only a resizable pool is autoscaled"
        before = self.concurrency
        if size > before:
            pool.resize(size)
            size = pool.concurrency  # some executors may have failed to start
        with self._changed:
            self.concurrency = size
            self._set_prefetch(size)
            running, waiting = len(self._running), len(self._pending)
            self._changed.notify_all()  # the consumer: the prefetch changed
        if size < before:
            pool.resize(size)
        logger.info(
            "autoscale: the %s pool %s from %d to %d (%d running, %d waiting)",
            self.pool_name,
            "grows" if size > before else "shrinks",
            before,
            size,
            running,
            waiting,
        )
        self._dispatch()

    # -- introspection ------------------------------------------------------------------

    def _holds(self, delivery: Delivery) -> bool:
        with self._lock:
            return self._held.get(delivery.receipt) is delivery

    def held_count(self) -> int:
        with self._lock:
            return len(self._held)

    def info(self) -> dict[str, Any]:
        info = {
            "hostname": self.hostname,
            "queues": self.queues,
            "pool": self.pool_name,
            "concurrency": self.concurrency,
            "counts": dict(self.counts),
        }
        if self.bounds is not None:
            info["autoscale"] = {"max": self.bounds.maximum, "min": self.bounds.minimum}
        return info
