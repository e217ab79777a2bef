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
  liveness of workers, never a fixed idle timeout. Where the broker ties a
  lease to the connection that delivered the message instead of a clock (AMQP:
  ``capabilities.leases_expire`` is False), the message comes back when that
  connection closes, and ``extend`` only tells whether it is still open.
* Delays live in the broker: a message published with ``delay_s`` is stored by
  the transport and becomes visible when due, not held in worker memory.

A transport may also offer ``ack_many(deliveries)`` (:class:`AcksInBatches`):
acknowledging several messages in one request, each checked against its own
lease. Workers batch the acknowledgements of finished tasks and use it when it
is there (:func:`ack_many`); without it they acknowledge one by one. One that
can send acknowledgements in the same request as a reserve offers
:class:`AcksWhileReserving`: a worker about to reserve hands over the acks it
has collected rather than sending them on their own.

A transport whose broker pushes messages (a consumer with a prefetch window)
offers :class:`Consuming`: the worker calls ``consume(queues, prefetch=...,
on_delivery=...)`` instead of polling :meth:`Transport.reserve`, and the broker,
not a buffer in the transport, bounds how many messages the worker holds.

A transport may also fan messages out to subscribers (:class:`Broadcast`), at
most once: control commands, events and revocations ride on it. It is a
protocol with its own conformance suite, not a flag: ``capabilities.broadcast``
is True exactly when the transport implements it, and callers test
``isinstance(transport, Broadcast)``. Without it, a per-worker control queue
stands in (docs/conformance.md, "Broadcast"). :class:`ThreadedSubscription` is
the plumbing every implementation needs around its subscriber's thread.

Every method may be called from several threads of one process at once; a
transport makes itself safe for that (a lock, or a connection per thread).
Failures of the underlying client are raised as
:class:`~petiole.errors.TransportError` (never the client library's own type).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, cast, runtime_checkable

from petiole.capabilities import offers
from petiole.errors import PetioleError
from petiole.urls import mask_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TransportCapabilities:
    """What a transport can do. The conformance kit runs the tests each flag implies.

    ``priorities``: higher ``priority`` values (0-9) are reserved first among
    messages that are due. ``max_delay_s``: the longest delay the broker holds
    natively (``None`` = unbounded); the core re-delays longer ones transparently.
    ``broadcast``: True exactly when the transport implements :class:`Broadcast`
    (the conformance kit checks that they agree); code that broadcasts tests
    ``isinstance(transport, Broadcast)``, the flag is for listings and the kit.
    ``max_message_bytes``: the largest envelope the broker accepts (``None`` =
    no fixed limit). ``leases_expire``: True when a lease ends ``lease_s`` after
    it was taken or last extended, and an unsettled message then comes back by
    itself; False when the broker ties the lease to the connection (channel)
    that delivered the message (AMQP): it lasts as long as that connection, a
    message comes back when the connection closes, :meth:`Transport.extend`
    only reports whether the connection still holds it, and a transport whose
    ack, nack or dead-letter failed closes that connection so the broker
    returns the message (otherwise nothing would). ``counts_leased``: :meth:`Transport.size`
    and :meth:`Transport.purge` include leased (delivered, unsettled) messages
    (False where the broker only counts and purges messages waiting in the
    queue, as AMQP does). ``min_lease_s``: the shortest lease the broker honours
    (SQS: 1 second). ``max_unsettled_s``: the longest the broker lets a
    delivery stay unsettled, however alive its consumer, before it takes the
    message back (RabbitMQ's ``consumer_timeout``); ``None`` = no such limit. A
    task running longer is handed to another worker while it still runs, so the
    worker warns at start about tasks whose time limit exceeds it.
    ``fifo``: within one queue, equal-priority messages are reserved oldest first
    (``False`` for brokers that only approximate order, such as SQS standard
    queues). ``queue_preference``: :meth:`Transport.reserve` takes from the queues
    in the order given — a message of an earlier queue before any of a later one
    (``False`` when it samples queues, or serves them by its own rule).
    ``deduplicates_copies``: publishing again the ``message_id`` and payload of a
    message it holds may be dropped as a duplicate (SQS FIFO queues, for five
    minutes); False where such a copy is a new message, reserved once the held one
    is acknowledged, with a delivery count of 1 — how a worker hands back messages
    it holds but will not run soon (docs/worker.md, "Prefetch"). Where it is True,
    the worker does not hand messages back.
    """

    priorities: bool = False
    max_delay_s: float | None = None
    broadcast: bool = False
    max_message_bytes: int | None = None
    leases_expire: bool = True
    counts_leased: bool = True
    min_lease_s: float = 0.0
    max_unsettled_s: float | None = None
    fifo: bool = True
    queue_preference: bool = True
    deduplicates_copies: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """One leased message, as handed out by :meth:`Transport.reserve`.

    ``payload`` is the envelope in its canonical framing
    (:meth:`Envelope.to_bytes`), byte for byte as published. The transport never
    parses or rejects it: the worker does, so a malformed message still reaches
    a worker that can dead-letter it with a reason.

    ``receipt`` is an opaque token the transport needs to ack, nack, extend or
    dead-letter exactly this lease; a receipt from an expired lease must not
    affect a newer lease of the same message. Receipts are unique among the
    deliveries a transport object hands out, across all its queues: the worker
    files what it holds by receipt. ``delivery_count`` is 1 on the
    first delivery and grows by one each time the message is delivered again —
    after a lease ran out, a connection closed, or a :meth:`Transport.nack` with
    ``requeue``, however the transport implements them: a transport that
    returns a message by publishing a copy (a delay queue, a visibility change
    it cannot make in place) carries the count with the copy (in a header of
    its own, a counter, or the broker's own count), so the worker's
    ``max_deliveries`` cap holds on every transport. Only
    :meth:`DeadLetterAdmin.requeue_dead_letters` starts it again at 1.
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
        is 0-9, higher first, honoured when ``capabilities.priorities`` is set; a
        value outside 0-9 is clamped into it, never an error.
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
        run twice. When ``capabilities.leases_expire`` is False there is nothing
        to renew: it returns whether the connection that delivered the message
        still holds it (True until it is settled or that connection closed),
        without a round trip to the broker.
        """
        ...

    def dead_letter(self, delivery: Delivery, *, reason: str) -> None:
        """Move the message out of its queue into that queue's dead-letter store,
        with ``reason``, atomically (it must not be both live and dead, nor neither).
        A stale receipt (the message was since leased by another consumer) is ignored."""
        ...

    def purge(self, queue: str) -> int:
        """Delete every message in ``queue``, delayed ones included, and leased ones
        when ``capabilities.counts_leased`` (otherwise those come back if not
        acknowledged); return how many."""
        ...

    def size(self, queue: str) -> int:
        """How many messages ``queue`` holds, counting delayed ones, and leased ones
        when ``capabilities.counts_leased``."""
        ...

    def close(self) -> None:
        """Release connections. Calling it twice is harmless. A :meth:`reserve`
        waiting in another thread returns promptly (``[]``) — or, where the client
        cannot interrupt a long poll in flight (SQS), at that poll's end, starting
        no other; the transport's README says so."""
        ...


@runtime_checkable
class DeadLetterAdmin(Protocol):
    """Optional: listing, requeueing and purging a queue's dead letters.

    Every transport *keeps* dead letters (:meth:`Transport.dead_letter`); one whose
    broker administers them with its own tools (a RabbitMQ dead-letter queue, an
    SQS redrive queue) need not offer this. Without it, ``petiole dlq`` says so and
    names the broker's way, and ``AsyncResult.why()`` cannot name a dead letter's
    reason; nothing else in the core depends on it.
    """

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


@runtime_checkable
class AcksInBatches(Protocol):
    """The optional batch acknowledgement a transport may offer."""

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge every delivery as :meth:`Transport.ack` would, in as few
        requests as the broker allows; stale receipts are ignored one by one."""
        ...


@runtime_checkable
class AcksWhileReserving(Protocol):
    """The optional reserve that carries acknowledgements: a worker about to
    reserve hands over the acks it has collected, and the transport sends them in
    the reserve's own request rather than in one of their own."""

    def ack_and_reserve(
        self,
        acks: Sequence[Delivery],
        queues: Sequence[str],
        *,
        max_messages: int,
        wait_s: float,
        lease_s: float,
    ) -> list[Delivery]:
        """Acknowledge ``acks`` as :meth:`AcksInBatches.ack_many` would, then
        reserve as :meth:`Transport.reserve` would, in as few requests as the
        broker allows: the acknowledgements take effect before the reserve waits.

        Raises :class:`~petiole.errors.PetioleError` when the acknowledgements
        could not be made (whether they were is then unknown: each message comes
        back as an unsettled one does); a message the same request reserved
        then comes back when its lease ends. An outage while reserving is the
        reserve's: ``[]``, or the error :meth:`Transport.reserve` raises."""
        ...


@runtime_checkable
class PublishesInBatches(Protocol):
    """The optional batch publishing a transport may offer."""

    def batch(self) -> AbstractContextManager[None]:
        """A block in which this thread's :meth:`Transport.publish` calls return
        without waiting for the broker one by one: at the block's end, every one of
        them is durable, or the block raises :class:`~petiole.errors.TransportError`.
        A publish retried at the end because its first answer was lost may be
        delivered twice (at least once). A block opened inside another joins it (a group
        of groups): the outer block's end waits for both. A block left by an exception
        still sends what was published in it and waits for it, as publishes outside a
        block would have been sent (the exception then propagates; a failure to send
        raises :class:`~petiole.errors.TransportError` from it). A transport may send
        some of a block's publishes before its end."""
        ...


def publishing_in_batches(transport: Transport) -> AbstractContextManager[None]:
    """``transport.batch()`` when the transport offers it, else a block that changes
    nothing (each publish waits as usual). For sending many messages at once: a
    group's members."""
    if offers(transport, PublishesInBatches):
        return cast(PublishesInBatches, transport).batch()
    return contextlib.nullcontext()


def ack_many(transport: Transport, deliveries: Sequence[Delivery]) -> None:
    """Acknowledge ``deliveries``: in batches when the transport offers
    ``ack_many``, otherwise one by one."""
    if not deliveries:
        return
    if offers(transport, AcksInBatches):
        cast(AcksInBatches, transport).ack_many(deliveries)
        return
    failed: PetioleError | None = None
    for delivery in deliveries:  # each on its own: one failure must not skip the rest
        try:
            transport.ack(delivery)
        except PetioleError as exc:
            failed = failed or exc
    if failed is not None:
        raise failed


def check_queue_names(queues: Sequence[str], *, allow_none: bool = False) -> list[str]:
    """``queues`` without repeats, in order; ``TypeError`` for a bare string (a
    common slip: it would be read as one queue per character), ``ValueError`` for
    none unless ``allow_none``."""
    if isinstance(queues, str):
        raise TypeError(f"queues must be a sequence of queue names, not the string {queues!r}")
    names = list(dict.fromkeys(queues))
    if not names and not allow_none:
        raise ValueError("no queue given")
    return names


def unsettled_return(transport: Transport) -> str:
    """When a message this transport delivered, and that was not settled, comes
    back: the end of a log line such as "it comes back ...". Derived from
    ``capabilities.leases_expire``, never assumed."""
    if transport.capabilities.leases_expire:
        return "when the lease runs out"
    return "when the connection that delivered it closes"


# -- push consumption -----------------------------------------------------------------


class Consumer(Protocol):
    """A running push consumer, made by :meth:`Consuming.consume`."""

    def close(self) -> None:
        """Stop deliveries: once it returns, ``on_delivery`` is not called again.

        Deliveries already handed out are not returned by it: they stay the
        caller's to settle, and come back as any unsettled delivery does. Safe
        from any thread except inside ``on_delivery``, and more than once.
        """
        ...


@runtime_checkable
class Consuming(Protocol):
    """Push consumption: the broker sends deliveries, bounded by a prefetch window.

    Optional; a worker uses it instead of :meth:`Transport.reserve` when the
    transport offers it (``isinstance(transport, Consuming)``). The contract:

    * **Who calls what.** ``on_delivery(delivery)`` runs on a thread the
      transport owns (its I/O thread), one delivery at a time per consumer, in
      the order the broker sent them. It must return quickly: the worker only
      checks the headers and files the message. What it raises is logged and
      the delivery is returned to the queue (``nack``), never lost.
      :meth:`Transport.ack`, ``nack``, ``extend`` and ``dead_letter`` of a
      pushed delivery may be called from any thread (the pool's, the ack
      batcher's): the transport carries them to the connection or channel that
      delivered it, as the broker requires.
    * **Prefetch.** At most ``prefetch`` deliveries of a consumer are
      unsettled at any time (not acknowledged, returned or dead-lettered, and
      not lost with their lease or connection); settling one lets the next
      come. The broker enforces the window where it can (AMQP's ``basic.qos``),
      so messages a worker cannot start yet wait in the queue, visible to other
      workers, instead of in a buffer of this process.
    * **Leases.** A delivery is leased exactly as one from ``reserve`` with
      ``lease_s`` (or, when ``capabilities.leases_expire`` is False, for as
      long as its connection lives). Acknowledged, returned and lost messages
      follow :class:`Transport`'s rules, ``delivery_count`` included.
    * **Outages.** When the connection drops, the transport reconnects and
      resumes consuming, logging the outage once; deliveries of the lost
      connection are stale from then on (``extend`` returns False, settling
      them is ignored) and the broker delivers those messages again.
    * :meth:`Transport.close` stops every consumer of the transport.
    """

    def consume(
        self,
        queues: Sequence[str],
        *,
        prefetch: int,
        lease_s: float,
        on_delivery: Callable[[Delivery], None],
    ) -> Consumer:
        """Start delivering messages of ``queues`` to ``on_delivery``.

        Returns once the broker has the consumer. Raises ``TypeError`` for a
        string instead of a sequence of queues, ``ValueError`` for no queue or a
        ``prefetch`` below 1, and :class:`~petiole.errors.TransportError` when
        the broker cannot be reached.
        """
        ...


# -- broadcast ------------------------------------------------------------------------


class Subscription(Protocol):
    """A live subscription, made by :meth:`Broadcast.subscribe`."""

    def close(self) -> None:
        """Stop delivering, and let the broker forget this subscriber.

        Safe from any thread, more than once, and from inside this
        subscription's own callback. Called from any other thread, it returns
        once a callback that is running has returned; no callback of this
        subscription starts after that. Called from the callback, it returns at
        once, and that callback is the last.
        """
        ...


@runtime_checkable
class Broadcast(Protocol):
    """Fan-out of small messages to every current subscriber of a channel.

    The optional part of a transport that control commands, events and
    revocations ride on. A transport implements it exactly when
    ``capabilities.broadcast`` is True; callers test
    ``isinstance(transport, Broadcast)``.

    Delivery is **at most once**, unlike the queues':

    * A subscription receives every message broadcast on its channels (by any
      connection, in any process) after :meth:`subscribe` returned, for as long
      as it stays connected: ``subscribe`` returns only once the broker has the
      subscription. A message broadcast before ``subscribe`` was called is never
      delivered; one broadcast while it runs may or may not be.
    * A subscription receives a message at most once: nothing is stored for
      later subscribers and nothing is replayed. A subscriber that is cut off
      (its connection lost, or too far behind) misses what was broadcast
      meanwhile, and is not told what. Whoever needs certainty confirms by
      other means (a reply, a read of the state).
    * The messages of one channel reach each subscription in the order the
      broker received them (for one caller: the order of its ``broadcast``
      calls). Nothing is promised about order across channels.

    Payloads are opaque bytes, delivered byte for byte. Broadcast is meant for
    control messages and events: every implementation carries at least 64 KiB,
    and one over ``capabilities.max_message_bytes`` raises
    :class:`~petiole.errors.MessageTooLarge`. Channel names made of letters,
    digits, ``.``, ``-`` and ``_`` work on every transport (``petiole.control``).
    """

    def broadcast(self, channel: str, payload: bytes) -> int:
        """Send ``payload`` to every current subscription of ``channel``.

        Returns how many subscriptions the broker handed it to (0: nobody was
        subscribed, and the message is gone), or -1 when the broker cannot tell
        (subscribers that poll read it later). A count is no acknowledgement:
        a subscriber may still miss the message. Never waits for a subscriber's
        callback, and never runs one in the caller's thread. Raises
        :class:`~petiole.errors.TransportError` when the broker cannot take it.
        """
        ...

    def subscribe(
        self, channels: Sequence[str], on_message: Callable[[str, bytes], None]
    ) -> Subscription:
        """Call ``on_message(channel, payload)`` for each message broadcast on
        ``channels`` from now on, until the subscription is closed.

        Returns once the broker has the subscription (see the class docstring).
        ``on_message`` runs on a thread of the transport's, never in a caller
        of ``broadcast``; one message at a time per subscription, so it needs no
        lock against itself. It may call the transport (broadcast a reply,
        publish a task). What it raises is logged with its traceback, and the
        subscription goes on with the next message. It should return quickly:
        a slow callback holds up this subscription's later messages, and one
        that falls too far behind may miss some (at most once).

        A subscription outlives outages: it reconnects and subscribes again,
        missing what was broadcast meanwhile. Closing the transport closes its
        subscriptions. Raises ``TypeError`` for a string instead of a sequence
        of channels, ``ValueError`` for no channel, and
        :class:`~petiole.errors.TransportError` when the broker cannot be reached.
        """
        ...


class ThreadedSubscription:
    """A :class:`Subscription` whose callbacks run on a daemon thread of its own.

    The plumbing of a :class:`Broadcast` implementation (the built-in ones and
    petiole-redis use it). The implementation subscribes at the broker before
    ``subscribe`` returns, then calls :meth:`start`. The thread calls
    :meth:`fetch` in a loop and ``on_message`` for each message it returns,
    logging what either raises; :meth:`close` works from any thread. A subclass
    implements:

    * :meth:`fetch`: the next messages, in order, as ``(channel, payload)``;
      ``[]`` when a wait ends with none (it may wait as long as it likes, but
      returns soon after :meth:`wake`); ``None`` once the subscription can
      never receive again. When it raises, the error is logged (once for a run
      of failures) and it is called again after ``retry_s``.
    * :meth:`wake`: make a :meth:`fetch` that is waiting return soon. Called by
      :meth:`close` from any thread.
    * :meth:`release`: let the broker forget the subscription. Runs once, on
      the subscription's thread, as it ends.
    """

    #: Pause before :meth:`fetch` is tried again after it raised.
    retry_s: ClassVar[float] = 1.0

    def __init__(
        self,
        channels: Sequence[str],
        on_message: Callable[[str, bytes], None],
        *,
        thread_name: str,
    ) -> None:
        """Raises ``TypeError`` for a string instead of a sequence of channels
        and ``ValueError`` for no channel; repeated channels count once."""
        if isinstance(channels, (str, bytes)):
            raise TypeError(f"channels must be a sequence of names, not the string {channels!r}")
        self.channels: tuple[str, ...] = tuple(dict.fromkeys(channels))
        if not self.channels:
            raise ValueError("subscribe needs at least one channel")
        self._on_message = on_message
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {list(self.channels)!r} {state}>"

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def start(self) -> None:
        self._thread.start()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` (a backoff inside :meth:`fetch`); True at once when closed."""
        return self._closed.wait(seconds)

    def close(self) -> None:
        """See :meth:`Subscription.close`."""
        self._closed.set()
        self.wake()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def fetch(self) -> list[tuple[str, bytes]] | None:
        raise NotImplementedError

    def wake(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        failing = False
        try:
            while not self._closed.is_set():
                try:
                    batch = self.fetch()
                except Exception as exc:
                    if not failing:
                        logger.warning(
                            "broadcast subscription to %s cannot receive (%s: %s); "
                            "trying again every %g s",
                            list(self.channels),
                            type(exc).__name__,
                            mask_text(str(exc)),
                            self.retry_s,
                        )
                    failing = True
                    self._closed.wait(self.retry_s)
                    continue
                if failing:
                    logger.info("broadcast subscription to %s receives again", list(self.channels))
                    failing = False
                if batch is None:
                    return
                for channel, payload in batch:
                    if self._closed.is_set():
                        return
                    try:
                        self._on_message(channel, payload)
                    except Exception:
                        logger.exception(
                            "broadcast callback %r failed on a message of channel %r; "
                            "the subscription goes on",
                            self._on_message,
                            channel,
                        )
        finally:
            self._closed.set()
            try:
                self.release()
            except Exception:
                logger.exception(
                    "broadcast subscription to %s: release failed", list(self.channels)
                )


TransportFactory = Callable[[str, Mapping[str, Any]], Transport]
"""``factory(url, options) -> Transport``, registered by URL scheme through
``petiole_transports``."""
