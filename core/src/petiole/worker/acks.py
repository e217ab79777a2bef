"""Acknowledging finished tasks' messages in batches.

One acknowledgement per task is one broker round trip per task: on a fast
broker that round trip costs more than running a small task. The worker hands
acks to an :class:`AckBatcher`, whose thread sends whatever has collected in one
request (:func:`petiole.transport.ack_many`) once the batch is full or its
oldest ack has waited ``window_s``. While one batch is in flight the next one
collects, so under load batches grow by themselves and when idle an ack leaves
within ``window_s``.

At-least-once is unchanged: a message whose ack has not been sent is still
leased, so a worker killed before the flush has it delivered again, exactly as
a crash just before a single ack would. An ack that fails leaves the message to
come back as the transport declares (``capabilities.leases_expire``: when its
lease ends, or when the connection that delivered it closes — a transport whose
leases do not expire closes that connection itself when an ack fails). Nothing
is acknowledged before its task finished.

A transport that can also acknowledge in the request of a reserve
(:class:`~petiole.transport.AcksWhileReserving`) lets a due batch ride on the
worker's next reserve (:meth:`AckBatcher.take`) instead of a request of its
own: a busy worker reserves often, so its acks cost no request at all. The
thread still sends a batch no reserve took within a second window: a worker
blocked in a read on an empty queue takes none.

Batching is used only with a transport that acknowledges a batch in one
request (``ack_many``): sending acks one by one from a single thread would be
slower than from the tasks' own threads, and the backlog would outlast leases.
The worker counts pending acks beyond one batch against its prefetch
(:meth:`AckBatcher.pending`), so a slow broker holds back reserving rather than
letting acks pile up, while a batch collecting does not hold a fast one back.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from petiole.errors import PetioleError
from petiole.transport import AcksInBatches, Delivery, Transport, ack_many, unsettled_return

logger = logging.getLogger("petiole.worker")


class AckBatcher:
    """Collects ``(delivery, count_as)`` acks and sends them in batches.

    ``counts`` is incremented under ``count_as`` for each message once its ack
    was sent. With ``max_batch`` of 1, or a transport without ``ack_many``, there
    is no thread: :meth:`add` sends at once.
    """

    def __init__(
        self,
        transport: Transport,
        counts: collections.Counter[str],
        *,
        max_batch: int,
        window_s: float,
    ) -> None:
        self.transport = transport
        self.counts = counts
        self.max_batch = max(1, max_batch) if isinstance(transport, AcksInBatches) else 1
        self.window_s = max(0.0, window_s)
        self._batch: list[tuple[Delivery, str]] = []
        self._first_at = 0.0  # monotonic time the oldest ack in the batch was added
        self._in_flight = 0
        self._flushers = 0  # callers of flush() waiting: send without waiting for the window
        self._closing = False
        self._changed = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        #: Set when batches can ride on the worker's reserves (:meth:`take`): the
        #: thread then leaves a due batch one more window for a reserve to take.
        self.rides = False
        #: Called after each batch went out (or failed): the worker may reserve again.
        self.on_sent: Callable[[], None] | None = None

    @property
    def batching(self) -> bool:
        return self.max_batch > 1

    def start(self) -> None:
        if self.batching and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="petiole-acks", daemon=True)
            self._thread.start()

    def add(self, delivery: Delivery, count_as: str) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():  # not batching, not started, or closed
            self._send([(delivery, count_as)])
            return
        with self._changed:
            if not self._batch:
                self._first_at = time.monotonic()
                self._changed.notify()
            self._batch.append((delivery, count_as))
            if len(self._batch) == self.max_batch:
                self._changed.notify()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Send everything added so far, and wait until it was sent (or failed)."""
        if self._thread is None:
            return True
        deadline = time.monotonic() + timeout_s
        with self._changed:
            self._flushers += 1
            self._changed.notify_all()
            try:
                while self._batch or self._in_flight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(remaining)
            finally:
                self._flushers -= 1
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush, then stop the thread; later acks are sent one by one."""
        thread = self._thread
        if thread is None:
            return
        self.flush(timeout_s)
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        thread.join(timeout_s)
        self._thread = None
        # Anything added while closing goes out directly.
        with self._changed:
            leftover, self._batch = self._batch, []
        if leftover:
            self._send(leftover)

    def pending(self) -> int:
        with self._changed:
            return len(self._batch) + self._in_flight

    def take(self) -> list[tuple[Delivery, str]]:
        """A batch that is due (full, or its oldest ack has waited ``window_s``),
        for a reserve to carry (:class:`~petiole.transport.AcksWhileReserving`);
        ``[]`` if none is. In flight until :meth:`taken_sent` gets the outcome."""
        with self._changed:
            batch = self._due_batch(self.window_s) if self._batch else None
            if batch is None:
                return []
            self._in_flight += len(batch)
            return batch

    def taken_sent(self, batch: list[tuple[Delivery, str]], error: BaseException | None) -> None:
        """The outcome of sending a batch from :meth:`take`: counted, or logged."""
        try:
            if error is None:
                self._count(batch)
            else:
                self._log_failure(batch, error)
        finally:
            self._done(batch)

    def _run(self) -> None:
        while True:
            with self._changed:
                batch = self._next_batch()
                if batch is None:
                    return
                self._in_flight += len(batch)
            try:
                self._send(batch)
            finally:
                self._done(batch)

    def _done(self, batch: list[tuple[Delivery, str]]) -> None:
        with self._changed:
            self._in_flight -= len(batch)
            self._changed.notify_all()
        if self.on_sent is not None:
            self.on_sent()

    def _next_batch(self) -> list[tuple[Delivery, str]] | None:
        """Wait (lock held) until a batch is full or due; None when closing and empty."""
        # A batch that can ride on a reserve gets a second window for one to come
        # (a worker blocked in a read on an empty queue makes none).
        window_s = self.window_s * 2 if self.rides else self.window_s
        while True:
            if self._closing and not self._batch:
                return None
            if self._batch:
                batch = self._due_batch(window_s)
                if batch is not None:
                    return batch
                self._changed.wait(self._first_at + window_s - time.monotonic())
            else:
                self._changed.wait()

    def _due_batch(self, window_s: float) -> list[tuple[Delivery, str]] | None:
        """Cut the next batch (lock held, one collecting) if it is full, its
        oldest ack has waited ``window_s``, or a flush or close asks; else None."""
        now = time.monotonic()
        full = len(self._batch) >= self.max_batch
        if not (full or self._first_at + window_s <= now or self._flushers or self._closing):
            return None
        batch = self._batch[: self.max_batch]
        del self._batch[: self.max_batch]
        if self._batch:
            self._first_at = now
        return batch

    def _send(self, batch: list[tuple[Delivery, str]]) -> None:
        try:
            ack_many(self.transport, [delivery for delivery, _ in batch])
        except Exception as exc:
            self._log_failure(batch, exc)
            return
        self._count(batch)

    def _count(self, batch: list[tuple[Delivery, str]]) -> None:
        for _, count_as in batch:
            self.counts[count_as] += 1

    def _log_failure(self, batch: list[tuple[Delivery, str]], exc: BaseException) -> None:
        if isinstance(exc, PetioleError):
            logger.error(
                "could not acknowledge %d message(s) (%s); each comes back %s and may run again",
                len(batch),
                exc,
                unsettled_return(self.transport),
            )
        else:  # a plugin's bug must not stop every later acknowledgement
            logger.error(
                "could not acknowledge %d message(s) (unexpected error in the transport); "
                "each comes back %s and may run again",
                len(batch),
                unsettled_return(self.transport),
                exc_info=exc,
            )
