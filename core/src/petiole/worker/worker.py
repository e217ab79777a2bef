"""The worker: reserve messages, check them, run them on a pool, settle each one.

Three threads share the work:

* the **consumer** reserves up to ``prefetch`` messages, checks each one
  (delivery count, framing, content type, registration, expiry, ETA) without
  deserializing its body, and queues the runnable ones;
* the **pool** runs jobs, calling back with an outcome that the worker settles
  (ack, dead-letter or requeue) — only after the task finished;
* the **lease keeper** renews the lease of every message the worker holds, so
  a long task is never handed to a second worker while this one is alive.

Shutdown (SIGTERM, SIGINT, or :meth:`Worker.stop`) stops reserving, returns
the unstarted prefetched messages at once, and lets running tasks finish for up
to ``shutdown_timeout_s``; after that, or on a second signal, running tasks are
cut short and their messages returned too. Nothing is acknowledged that did not
finish, so nothing is lost either way.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from petiole import remote_errors, states
from petiole.backend import ResultRecord
from petiole.envelope import Envelope
from petiole.errors import PetioleError, ProtocolError, TaskRevoked
from petiole.execution import TaskRunner, default_hostname
from petiole.pools.base import ACK, LOST, REJECT, REQUEUE, Job, Outcome
from petiole.transport import Delivery
from petiole.urls import mask_password

if TYPE_CHECKING:
    from petiole.app import Petiole

logger = logging.getLogger("petiole.worker")

# A message delivered this much before its ETA is put back until due (the broker's
# delay is authoritative; this only catches brokers with a maximum delay).
_ETA_TOLERANCE_S = 0.05
# Back-off after a failed reserve (broker down), doubling up to the cap.
_RESERVE_BACKOFF_S = (0.1, 5.0)


class Worker:
    """Consumes ``queues`` of ``app`` until stopped.

    ``run()`` blocks and handles signals (the CLI's way); ``start()`` and
    ``stop()`` run it in background threads (the test fixtures' way).
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
        reserve_wait_s: float = 1.0,
    ) -> None:
        settings = app.settings
        self.app = app
        self.queues = list(queues or settings.queues)
        self.hostname = hostname or default_hostname()
        wanted = concurrency or settings.worker_concurrency or os.cpu_count() or 1
        self.pool_name = pool or settings.worker_pool
        self.pool = app.plugins.get("pool", self.pool_name).component(wanted)
        self.concurrency: int = self.pool.concurrency
        multiplier = (
            settings.prefetch_multiplier if prefetch_multiplier is None else prefetch_multiplier
        )
        self.prefetch = max(self.concurrency, self.concurrency * multiplier)
        self.shutdown_timeout_s = (
            settings.shutdown_timeout_s if shutdown_timeout_s is None else shutdown_timeout_s
        )
        self.reserve_wait_s = reserve_wait_s
        self.transport = app.transport
        self.lease_s = max(settings.lease_s, self.transport.capabilities.min_lease_s)
        self.max_deliveries = settings.max_deliveries
        self.runner = TaskRunner(app, hostname=self.hostname)

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._held: dict[str, Delivery] = {}  # receipt -> delivery, every message we hold
        self._pending: collections.deque[Job] = collections.deque()  # prefetched, not started
        self._running: set[str] = set()
        self._dispatching = threading.local()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._signals_seen = 0
        self.counts: collections.Counter[str] = collections.Counter()
        self.accepted_content_types = app.accepted_content_types()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the pool, the consumer and the lease keeper in background threads."""
        self.pool.start(self.runner)
        self.app.plugins.hook.petiole_worker_start(worker=self)
        self._threads = [
            threading.Thread(target=self._consume, name="petiole-consumer", daemon=True),
            threading.Thread(target=self._keep_leases, name="petiole-leases", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        logger.info(
            "worker %s ready: queues=%s pool=%sx%d prefetch=%d lease=%.0fs broker=%s backend=%s",
            self.hostname,
            ",".join(self.queues),
            self.pool_name,
            self.concurrency,
            self.prefetch,
            self.lease_s,
            mask_password(self.app.settings.broker_url),
            mask_password(self.app.settings.backend_url),
        )

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (in the main thread) or :meth:`stop`; return an exit code."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.start()
        while not self._stopping.wait(0.5):
            pass
        self._shutdown()
        return 0

    def stop(self) -> None:
        """Graceful stop (as SIGTERM): return unstarted messages, let running tasks finish."""
        self._shutdown()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals_seen += 1
        name = signal.Signals(signum).name
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
            self._return_all_held()
            os._exit(0)

    def _shutdown(self) -> None:
        if self._stopped.is_set():
            return
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        # Unstarted messages go back at once, not after the consumer's current reserve.
        self._return_pending()
        if self._threads:
            self._threads[0].join()
        self._return_pending()
        finished = self.pool.stop(timeout_s=self.shutdown_timeout_s)
        if not finished:
            logger.warning(
                "running tasks did not finish within %.0f s; returning them to the queue",
                self.shutdown_timeout_s,
            )
            self.pool.terminate()
            self._return_all_held()
        self._stopped.set()
        for thread in self._threads[1:]:
            thread.join()
        self.app.plugins.hook.petiole_worker_stop(worker=self)
        logger.info("worker %s stopped: %s", self.hostname, dict(self.counts))

    # -- consuming ---------------------------------------------------------------

    def _consume(self) -> None:
        backoff = _RESERVE_BACKOFF_S[0]
        while not self._stopping.is_set():
            with self._changed:
                free = self.prefetch - len(self._held)
                if free <= 0:
                    self._changed.wait(timeout=0.5)
                    continue
            try:
                deliveries = self.transport.reserve(
                    self.queues, max_messages=free, wait_s=self.reserve_wait_s, lease_s=self.lease_s
                )
            except PetioleError as exc:
                logger.error(
                    "cannot reserve from the broker (%s); retrying in %.1f s", exc, backoff
                )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _RESERVE_BACKOFF_S[1])
                continue
            backoff = _RESERVE_BACKOFF_S[0]
            for delivery in deliveries:
                self._accept(delivery)
            self._dispatch()

    def _accept(self, delivery: Delivery) -> None:
        """Check a message using only its headers; queue it to run, or settle it now."""
        if delivery.delivery_count > self.max_deliveries:
            self._dead_letter(
                delivery,
                f"delivered {delivery.delivery_count} times "
                f"(max_deliveries={self.max_deliveries}): "
                "it may be killing its worker; inspect it with `petiole dlq list`",
            )
            return
        try:
            envelope = Envelope.from_bytes(delivery.payload)
        except ProtocolError as exc:
            self._dead_letter(delivery, f"malformed message: {exc}")
            return
        if envelope.content_type not in self.accepted_content_types:
            self._dead_letter(
                delivery,
                f"content type {envelope.content_type!r} is not accepted (accept_content="
                f"{self.app.settings.accept_content}); add its serializer to accept_content "
                "if its senders are trusted, then `petiole dlq requeue`",
            )
            return
        if envelope.task_name not in self.app.tasks:
            self._dead_letter(
                delivery,
                f"task {envelope.task_name!r} is not registered on this worker; start a worker "
                "whose app defines it, then `petiole dlq requeue`",
            )
            return
        now = time.time()
        expires = envelope.headers.get("expires")
        if expires is not None and expires < now:
            self._revoke_expired(delivery, envelope, expires)
            return
        eta = envelope.headers.get("eta")
        if eta is not None and eta - now > _ETA_TOLERANCE_S:
            self._redelay(delivery, eta - now)
            return
        job = Job(envelope, delivery.queue, delivery.delivery_count, delivery.receipt)
        with self._lock:
            self._held[delivery.receipt] = delivery
            self._pending.append(job)
        if self._stopping.is_set():
            self._return_pending()

    def _dispatch(self) -> None:
        """Hand pending jobs to free pool slots. Re-entrant calls (a solo pool
        finishing a job inside ``submit``) are absorbed by the outer loop."""
        if getattr(self._dispatching, "active", False):
            return
        self._dispatching.active = True
        try:
            while not self._stopping.is_set():
                with self._lock:
                    if not self._pending or len(self._running) >= self.concurrency:
                        return
                    job = self._pending.popleft()
                    self._running.add(job.receipt)
                self.pool.submit(job, self._on_done)
        finally:
            self._dispatching.active = False

    def _on_done(self, job: Job, outcome: Outcome) -> None:
        with self._lock:
            delivery = self._held.get(job.receipt)
        if delivery is not None:
            self._settle(delivery, job, outcome)
        with self._changed:
            self._held.pop(job.receipt, None)
            self._running.discard(job.receipt)
            self._changed.notify_all()
        self._dispatch()

    def _settle(self, delivery: Delivery, job: Job, outcome: Outcome) -> None:
        try:
            if outcome.kind == ACK:
                self.transport.ack(delivery)
                self.counts[outcome.state.lower() or "done"] += 1
            elif outcome.kind == REJECT:
                self._dead_letter(delivery, outcome.reason)
            elif outcome.kind == REQUEUE:
                self.transport.nack(delivery, requeue=True, delay_s=outcome.delay_s)
                self.counts["requeued"] += 1
            elif outcome.kind == LOST:
                # Another worker will run it; max_deliveries stops a task that kills every child.
                self.transport.nack(delivery, requeue=True)
                self.counts["lost"] += 1
        except PetioleError as exc:
            logger.error(
                "could not settle task %s with the broker (%s); it will be redelivered when "
                "its lease ends",
                job.envelope.task_id,
                exc,
            )

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        logger.error("dead-lettered a message from queue %r: %s", delivery.queue, reason)
        self.counts["dead_lettered"] += 1
        try:
            self.transport.dead_letter(delivery, reason=reason)
        except PetioleError as exc:
            logger.error("could not dead-letter it (%s); it will be redelivered", exc)

    def _revoke_expired(self, delivery: Delivery, envelope: Envelope, expires: float) -> None:
        reason = f"expired at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(expires))} UTC"
        logger.info("task %s %s not run: %s", envelope.task_name, envelope.task_id, reason)
        serializer = self.app.result_serializer
        description = remote_errors.describe(TaskRevoked(reason))
        try:
            self.app.store_result(
                ResultRecord(
                    envelope.task_id,
                    states.REVOKED,
                    serializer.dumps(description),
                    serializer.content_type,
                    None,
                    time.time(),
                    {"task": envelope.task_name, "reason": reason},
                )
            )
            self.transport.ack(delivery)
            self.counts["expired"] += 1
        except PetioleError as exc:
            logger.error("could not record expiry of task %s (%s)", envelope.task_id, exc)

    def _redelay(self, delivery: Delivery, remaining_s: float) -> None:
        max_delay = self.transport.capabilities.max_delay_s
        delay = remaining_s if max_delay is None else min(remaining_s, max_delay)
        try:
            self.transport.nack(delivery, requeue=True, delay_s=delay)
        except PetioleError as exc:
            logger.error(
                "could not re-delay a message (%s); it comes back when its lease ends", exc
            )

    # -- returning messages -----------------------------------------------------------

    def _return_pending(self) -> None:
        with self._lock:
            jobs = list(self._pending)
            self._pending.clear()
            deliveries = [self._held.pop(job.receipt) for job in jobs if job.receipt in self._held]
        self._return(deliveries)

    def _return_all_held(self) -> None:
        with self._lock:
            deliveries = list(self._held.values())
            self._held.clear()
            self._pending.clear()
        self._return(deliveries)

    def _return(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            try:
                self.transport.nack(delivery, requeue=True)
                self.counts["returned"] += 1
            except PetioleError as exc:
                logger.error(
                    "could not return a message (%s); it comes back when its lease ends", exc
                )

    # -- leases ---------------------------------------------------------------------------

    def _keep_leases(self) -> None:
        if not self.transport.capabilities.lease_extension:
            return
        interval = self.lease_s / 3
        while not self._stopped.wait(interval):
            with self._lock:
                held = list(self._held.values())
            for delivery in held:
                try:
                    if not self.transport.extend(delivery, lease_s=self.lease_s):
                        logger.warning(
                            "lost the lease of a message from %r (the worker stalled longer than "
                            "lease_s=%.0f); it may run twice",
                            delivery.queue,
                            self.lease_s,
                        )
                except PetioleError as exc:
                    logger.error("could not renew a lease (%s); retrying in %.0f s", exc, interval)

    # -- introspection ------------------------------------------------------------------

    def held_count(self) -> int:
        with self._lock:
            return len(self._held)

    def info(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "queues": self.queues,
            "pool": self.pool_name,
            "concurrency": self.concurrency,
            "counts": dict(self.counts),
        }
