"""The transport contract: what every broker plugin guarantees.

A transport moves messages (an :class:`~petiole.envelope.Envelope` in its
canonical byte framing, opaque to the transport) between producers and workers
with **at-least-once** delivery:

* Once :meth:`Transport.publish` returns, the message is durable in the broker
  (as durable as the broker is configured to be) and will be delivered.
* :meth:`Transport.reserve` hands out *leased* deliveries. A leased message is
  invisible to every other consumer until its lease ends. If it is neither
  acknowledged nor returned before then (the worker died, was killed, or lost
  its connection) it becomes available again with ``delivery_count`` one higher.
* Workers call :meth:`Transport.extend` for messages they still hold, so a long
  task is never redelivered while it is alive. Recovery therefore follows the
  liveness of workers, never a fixed idle timeout.
* Delays live in the broker: a message published with ``delay_s`` is stored by
  the transport and becomes visible when due, not held in worker memory.

A transport may also offer ``ack_many(deliveries)`` (:class:`AcksInBatches`):
acknowledging several messages in one request, each checked against its own
lease. Workers batch the acknowledgements of finished tasks and use it when it
is there (:func:`ack_many`); without it they acknowledge one by one.

Every method may be called from several threads of one process at once; a
transport makes itself safe for that (a lock, or a connection per thread).
Failures of the underlying client are raised as
:class:`~petiole.errors.TransportError` (never the client library's own type).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from petiole.errors import PetioleError


@dataclass(frozen=True, slots=True)
class TransportCapabilities:
    """What a transport can do. The conformance kit runs the tests each flag implies.

    ``priorities``: higher ``priority`` values (0-9) are reserved first among
    messages that are due. ``max_delay_s``: the longest delay the broker holds
    natively (``None`` = unbounded); the core re-delays longer ones transparently.
    ``broadcast``: pub/sub fan-out for control messages and events.
    ``max_message_bytes``: the largest envelope the broker accepts (``None`` =
    no fixed limit). ``lease_extension``: ``False`` when the broker ties leases to
    the consumer's connection (AMQP) and :meth:`Transport.extend` is a no-op.
    ``min_lease_s``: the shortest lease the broker honours (SQS: 1 second).
    ``ordered``: equal-priority messages are reserved oldest first, and queues
    in the order given to :meth:`Transport.reserve` (``False`` for brokers that
    only approximate order, such as SQS standard queues).
    """

    priorities: bool = False
    max_delay_s: float | None = None
    broadcast: bool = False
    max_message_bytes: int | None = None
    lease_extension: bool = True
    min_lease_s: float = 0.0
    ordered: bool = True


@dataclass(frozen=True, slots=True)
class Delivery:
    """One leased message, as handed out by :meth:`Transport.reserve`.

    ``payload`` is the envelope in its canonical framing
    (:meth:`Envelope.to_bytes`), byte for byte as published. The transport never
    parses or rejects it: the worker does, so a malformed message still reaches
    a worker that can dead-letter it with a reason.

    ``receipt`` is an opaque token the transport needs to ack, nack, extend or
    dead-letter exactly this lease; a receipt from an expired lease must not
    affect a newer lease of the same message. ``delivery_count`` is 1 on the
    first delivery and grows by one each time the message is reserved again.
    """

    payload: bytes
    queue: str
    receipt: str
    delivery_count: int
    message_id: str = ""
    lease_expires_at: float = 0.0  # wall clock, seconds since the epoch


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message in a queue's dead-letter store, with the reason it is there."""

    dead_letter_id: str
    queue: str
    reason: str
    delivery_count: int
    dead_at: float
    payload: bytes = field(repr=False)  # canonical framing, as published; may be malformed


@runtime_checkable
class Transport(Protocol):
    """A broker connection. Created by a factory registered through ``petiole_transports``."""

    capabilities: TransportCapabilities

    def publish(
        self,
        queue: str,
        payload: bytes,
        *,
        message_id: str = "",
        delay_s: float = 0.0,
        priority: int = 0,
    ) -> None:
        """Store ``payload`` in ``queue``; it is durable when this returns.

        ``payload`` is opaque bytes (normally ``Envelope.to_bytes()``); it comes
        back byte for byte as ``Delivery.payload``. ``message_id`` is the task id,
        for brokers that deduplicate or index by id; it need not be unique.

        ``delay_s`` > 0 keeps the message invisible for that long (never more than
        ``capabilities.max_delay_s``; the core clamps and re-delays). ``priority``
        is 0-9, higher first, honoured when ``capabilities.priorities`` is set.
        Raises :class:`~petiole.errors.MessageTooLarge` when the payload is over
        ``capabilities.max_message_bytes``.
        """
        ...

    def reserve(
        self, queues: Sequence[str], *, max_messages: int, wait_s: float, lease_s: float
    ) -> list[Delivery]:
        """Lease up to ``max_messages`` due messages from ``queues``.

        Returns as soon as at least one message is available, or an empty list
        after ``wait_s`` seconds (0 = do not wait). Two concurrent callers, in this
        process or any other, never both receive the same lease of a message.
        Order: by priority (when supported), then oldest first; across queues, in
        the order given (earlier queues first) where the broker allows.
        """
        ...

    def ack(self, delivery: Delivery) -> None:
        """The message is done: remove it for good. A stale receipt is ignored."""
        ...

    def nack(self, delivery: Delivery, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        """Give the message back. With ``requeue`` it becomes available again after
        ``delay_s``; without, it is dropped (callers dead-letter instead of dropping
        anything a user would miss). A stale receipt is ignored."""
        ...

    def extend(self, delivery: Delivery, *, lease_s: float) -> bool:
        """Renew the lease to end ``lease_s`` seconds from now.

        Returns False when the lease was already lost (expired and taken by
        another consumer, or acknowledged); the caller then knows the message may
        run twice. A no-op returning True when ``capabilities.lease_extension`` is
        False.
        """
        ...

    def dead_letter(self, delivery: Delivery, *, reason: str) -> None:
        """Move the message out of its queue into that queue's dead-letter store,
        with ``reason``, atomically (it must not be both live and dead, nor neither).
        A stale receipt (the message was since leased by another consumer) is ignored."""
        ...

    def purge(self, queue: str) -> int:
        """Delete every message in ``queue`` (leased or not); return how many."""
        ...

    def size(self, queue: str) -> int:
        """How many messages ``queue`` holds, counting delayed and leased ones."""
        ...

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of ``queue``."""
        ...

    def requeue_dead_letters(self, queue: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        """Publish dead letters back to ``queue`` (all, or those ids) with a fresh
        delivery count, removing them from the store; return how many moved."""
        ...

    def purge_dead_letters(self, queue: str) -> int:
        """Delete the dead letters of ``queue``; return how many."""
        ...

    def close(self) -> None:
        """Release connections. Calling it twice is harmless."""
        ...


@runtime_checkable
class AcksInBatches(Protocol):
    """The optional batch acknowledgement a transport may offer."""

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge every delivery as :meth:`Transport.ack` would, in as few
        requests as the broker allows; stale receipts are ignored one by one."""
        ...


def ack_many(transport: Transport, deliveries: Sequence[Delivery]) -> None:
    """Acknowledge ``deliveries``: in batches when the transport offers
    ``ack_many``, otherwise one by one."""
    if not deliveries:
        return
    if isinstance(transport, AcksInBatches):
        transport.ack_many(deliveries)
        return
    failed: PetioleError | None = None
    for delivery in deliveries:  # each on its own: one failure must not skip the rest
        try:
            transport.ack(delivery)
        except PetioleError as exc:
            failed = failed or exc
    if failed is not None:
        raise failed


TransportFactory = Callable[[str, Mapping[str, Any]], Transport]
"""``factory(url, options) -> Transport``, registered by URL scheme through
``petiole_transports``."""
