"""Settling messages with the broker (and, where needed, the result store).

Every way a message can end — acknowledged, dead-lettered, returned, re-delayed,
failed by the worker on the task's behalf — is one method here, with the
logging that tells an operator what happened and what to do. A broker or store
error while settling is logged, never raised: the message is still unsettled,
and comes back as the transport declares (when its lease ends, or when the
connection that delivered it closes: :func:`petiole.transport.unsettled_return`),
so nothing is lost either way.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from petiole import remote_errors, states
from petiole.app import Petiole
from petiole.backend import ResultRecord
from petiole.envelope import Envelope
from petiole.errors import (
    MessageDeadLettered,
    PetioleError,
    TaskRevoked,
    TimeLimitExceeded,
    WorkerLostError,
)
from petiole.logs import TASK_LOGGER
from petiole.pools.base import ACK, LOST, REQUEUE, TIME_LIMIT, Job, Outcome
from petiole.transport import Delivery, publishing_in_batches, unsettled_return
from petiole.worker.acks import AckBatcher

logger = logging.getLogger(TASK_LOGGER)


class Settler:
    def __init__(self, app: Petiole, hostname: str) -> None:
        self.app = app
        self.transport = app.transport
        self.hostname = hostname
        self.counts: collections.Counter[str] = collections.Counter()
        settings = app.settings
        self.acks = AckBatcher(
            self.transport,
            self.counts,
            max_batch=settings.ack_batch_size,
            window_s=settings.ack_batch_window_s,
        )

    def ack(self, delivery: Delivery, count_as: str) -> None:
        """Acknowledge (in the next batch); counted under ``count_as`` once sent."""
        self.acks.add(delivery, count_as)

    def dead_letter(self, delivery: Delivery, reason: str, not_run: Envelope | None = None) -> None:
        """Put the message in the dead-letter store. ``not_run``: its envelope, when
        its task did not run and stored nothing: recorded FAILURE with the reason
        (:class:`MessageDeadLettered`), or a caller waiting on its result would
        wait for ever."""
        logger.error("dead-lettered a message from queue %r: %s", delivery.queue, reason)
        self.counts["dead_lettered"] += 1
        try:
            self.transport.dead_letter(delivery, reason=reason)
        except PetioleError as exc:
            logger.error(
                "could not dead-letter it (%s); it comes back %s",
                exc,
                unsettled_return(self.transport),
            )
            return
        if not_run is not None:  # a failure: recorded even for a task that ignores results
            why = MessageDeadLettered(f"message dead-lettered, the task not run: {reason}")
            try:
                stored = self.app.backend.get(not_run.task_id)
                if stored is not None and stored.ready:
                    return  # an earlier delivery ran it (one past max_deliveries, say)
                record = self._failure(
                    not_run, states.FAILURE, why, dead_lettered_from=delivery.queue
                )
                self.app.store_result(record)
            except PetioleError as store_error:
                logger.error(
                    "could not record that task %s was dead-lettered (%s)",
                    not_run.task_id,
                    store_error,
                )

    def requeue(
        self, delivery: Delivery, *, delay_s: float = 0.0, count_as: str = "requeued"
    ) -> None:
        try:
            self.transport.nack(delivery, requeue=True, delay_s=delay_s)
            self.counts[count_as] += 1
        except PetioleError as exc:
            logger.error(
                "could not return a message (%s); it comes back %s",
                exc,
                unsettled_return(self.transport),
            )

    def return_all(self, deliveries: Iterable[Delivery]) -> None:
        for delivery in deliveries:
            self.requeue(delivery, count_as="returned")

    def hand_back(self, held: Sequence[tuple[Delivery, Envelope]]) -> None:
        """Messages held but not about to run go back to their queue, to run now in
        another worker process: each as a fresh copy (so the hop is not counted as
        a delivery towards ``max_deliveries``), published — in one request where
        the transport batches — before the held one is acknowledged. If the
        publishing fails, they are returned as they are instead."""
        if not held:
            return
        try:
            with publishing_in_batches(self.transport):
                for delivery, envelope in held:
                    self.transport.publish(
                        delivery.queue,
                        delivery.payload,
                        message_id=envelope.task_id,
                        priority=envelope.priority or 0,
                    )
        except PetioleError as exc:
            logger.warning(
                "could not hand %d message(s) back to their queue (%s); returning them",
                len(held),
                exc,
            )
            self.return_all(delivery for delivery, _ in held)
            return
        for delivery, _ in held:
            self.ack(delivery, count_as="handed_back")

    def redelay(self, delivery: Delivery, envelope: Envelope, remaining_s: float) -> None:
        """A message that arrived before its ETA (the broker caps delays) waits again.

        As a fresh copy, published before the old one is acknowledged: a task
        due in a week, re-delayed every 15 minutes, must not count those hops as
        deliveries and end in the dead-letter store.
        """
        max_delay = self.transport.capabilities.max_delay_s
        delay = remaining_s if max_delay is None else min(remaining_s, max_delay)
        try:
            self.transport.publish(
                delivery.queue,
                delivery.payload,
                message_id=envelope.task_id,
                delay_s=delay,
                priority=envelope.priority or 0,
            )
        except PetioleError as exc:
            logger.error(
                "could not re-delay task %s (%s); it comes back %s",
                envelope.task_id,
                exc,
                unsettled_return(self.transport),
            )
            return
        self.ack(delivery, count_as="redelayed")

    # -- outcomes the worker records on the task's behalf ----------------------------------

    def after_early_ack(self, job: Job, outcome: Outcome) -> None:
        """Settle a job whose message was acknowledged before it ran (``acks_late=False``):
        count it, record what the worker records for it, and say plainly what the
        early acknowledgement cost when the message can no longer be kept or returned."""
        envelope = job.envelope
        if outcome.kind == ACK:
            self.counts[outcome.state.lower() or "done"] += 1
        elif outcome.kind == TIME_LIMIT:
            logger.error("task %s %s %s", envelope.task_name, envelope.task_id, outcome.reason)
            self._fail(None, envelope, states.FAILURE, TimeLimitExceeded(outcome.reason))
        elif outcome.kind == LOST:
            # Nothing to return to the queue: the task fails, whatever reject_on_worker_lost says.
            self._fail(None, envelope, states.FAILURE, WorkerLostError(outcome.reason))
        else:  # REJECT or REQUEUE: the message is gone
            self.counts["lost" if outcome.kind == REQUEUE else "dead_lettered"] += 1
            logger.error(
                "task %s %s: %s; its message was acknowledged before the task ran "
                "(acks_late=False), so it is %s",
                envelope.task_name,
                envelope.task_id,
                outcome.reason,
                "not run again" if outcome.kind == REQUEUE else "not kept in the dead letters",
            )

    def _fail(
        self, delivery: Delivery | None, envelope: Envelope, state: str, exc: BaseException
    ) -> None:
        """Store ``state`` for the task with ``exc``, then acknowledge ``delivery``
        (None: acknowledged already, before the task ran)."""
        try:
            self.app.store_result(self._failure(envelope, state, exc))
        except PetioleError as store_error:
            if delivery is None:
                logger.error(
                    "could not record that task %s ended (%s)", envelope.task_id, store_error
                )
                return
            logger.error(
                "could not record that task %s ended (%s); its message goes back to the queue",
                envelope.task_id,
                store_error,
            )
            self.requeue(delivery)
            return
        if delivery is None:
            self.counts[state.lower()] += 1
        else:
            self.ack(delivery, count_as=state.lower())

    def _failure(
        self, envelope: Envelope, state: str, exc: BaseException, **meta: Any
    ) -> ResultRecord:
        """The record of a task the worker ended in ``state`` on its behalf, with
        ``exc`` (and ``meta`` beside its own)."""
        serializer = self.app.result_serializer
        return ResultRecord(
            envelope.task_id,
            state,
            serializer.dumps(remote_errors.describe(exc)),
            serializer.content_type,
            None,
            time.time(),
            {"task": envelope.task_name, "worker": self.hostname, "reason": str(exc), **meta},
            reply_to=_reply_to(envelope.headers),
        )

    def expired(self, delivery: Delivery, envelope: Envelope, expires: float) -> str:
        """Record the task REVOKED, not run; return the reason recorded."""
        reason = f"expired at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(expires))} UTC"
        logger.info("task %s[%s] not run: %s", envelope.task_name, envelope.task_id, reason)
        self._fail(delivery, envelope, states.REVOKED, TaskRevoked(reason))
        return reason

    def time_limit(self, delivery: Delivery, job: Job, reason: str) -> None:
        logger.error("task %s %s %s", job.envelope.task_name, job.envelope.task_id, reason)
        self._fail(delivery, job.envelope, states.FAILURE, TimeLimitExceeded(reason))

    def lost(self, delivery: Delivery, job: Job, reason: str) -> None:
        if self.app.settings.reject_on_worker_lost:
            # Another worker runs it again; max_deliveries stops one that kills every child.
            self.requeue(delivery, count_as="lost")
        else:
            self._fail(delivery, job.envelope, states.FAILURE, WorkerLostError(reason))


def _reply_to(headers: Mapping[str, Any]) -> str | None:
    """The message's ``reply_to`` header, when it is a string (the message may be
    malformed: it is failing)."""
    value = headers.get("reply_to")
    return value if isinstance(value, str) else None
