"""The RabbitMQ transport: each method's contract is in ``petiole/transport.py``.

How the contract maps onto AMQP 0-9-1 (the names it declares: :mod:`._topology`):

* **Publishing** is persistent (``delivery_mode`` 2), mandatory and confirmed:
  ``publish`` returns once the broker confirmed the message (:mod:`._link`; a
  message no queue took is an error, not a loss). Queues are durable and
  declared the first time the transport uses them.
* **Leases are the delivering channel** (``leases_expire`` is False): an
  unacknowledged message comes back when the channel or connection that
  delivered it closes. Workers consume (:class:`~petiole.transport.Consuming`)
  with ``basic.qos`` as the prefetch window; ``reserve`` is ``basic.get`` on
  the transport's synchronous connection (:mod:`._admin`). ``extend`` answers,
  without a round trip, whether the delivering channel still holds the message.
* **delivery_count** is 1 + the deliveries before this copy (the header
  ``x-petiole-returns``, written whenever the transport republishes: a nack, a
  delay) + the broker's redeliveries of this copy (a quorum queue's
  ``x-delivery-count``; a classic queue only says ``redelivered``, counted as 1).
* **nack** with ``requeue`` publishes a copy (to the queue, or through the delay
  levels) and acknowledges the original once the copy is confirmed; ``nack``
  without ``requeue`` acknowledges (drops). **dead_letter** publishes a copy to
  ``Q.petiole-dead`` with the reason in headers, then acknowledges. A crash
  between the two leaves both: at least once, never neither.
* **Delays** are held by the broker in binary TTL levels (:mod:`._topology`),
  whole seconds rounded up, at most ``2**delay_levels - 1`` s (the core re-delays
  longer ones). ``size``/``purge`` count them; they do not count delivered,
  unacknowledged messages (``counts_leased`` False: AMQP cannot).
* **Priorities** on classic queues (``x-max-priority`` 9); quorum queues on
  RabbitMQ 3.10 have none.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import pika
import pika.channel
import pika.exceptions
import pika.spec

from petiole.errors import ConfigError, MessageTooLarge, TransportError
from petiole.outages import (
    OutageTracker,
    backoff_s,
)
from petiole.transport import (
    DeadLetter,
    Delivery,
    TransportCapabilities,
    check_queue_names,
)
from petiole_amqp import _topology as topo
from petiole_amqp._admin import Admin
from petiole_amqp._link import (
    ChannelRefused,
    Confirmation,
    ConnectionLost,
    Link,
    PushConsumer,
    Unroutable,
    through_outage,
)
from petiole_amqp._options import AmqpOptions, AmqpTarget, parse_url

logger = logging.getLogger("petiole_amqp")
T = TypeVar("T")

_PERSISTENT = pika.DeliveryMode.Persistent
# A reserve waiting for a message polls basic.get this often at most.
_POLL_MAX_S = 0.05


@dataclass(frozen=True, slots=True)
class _Unconfirmed:
    """A publish of a batch, waiting for its confirm at the batch's end."""

    future: Confirmation
    queue: str
    payload: bytes
    properties: pika.BasicProperties
    delay_s: float


@dataclass(slots=True)
class _Held:
    """A delivery not settled yet: where to settle it, and what to copy when republishing."""

    channel: Any  # pika Channel (pushed) or BlockingChannel (reserved)
    tag: int
    properties: pika.BasicProperties
    pushed: bool
    generation: int  # the admin connection's, for reserved deliveries


class AmqpConsumer:
    """A :class:`~petiole.transport.Consumer` (see :meth:`AmqpTransport.consume`)."""

    def __init__(self, transport: AmqpTransport, push: PushConsumer) -> None:
        self._transport = transport
        self._push = push

    def close(self) -> None:
        link = self._transport._link
        if link is None or self._push.stopped:
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def stop() -> None:
            self._push.stop()
            done.set_result(None)

        link.submit(stop)
        try:
            done.result(timeout=self._transport.options.reply_timeout_s)
        except concurrent.futures.TimeoutError:
            self._push.stopped = True  # the I/O thread is gone: nothing is delivered anyway
        link.remove_consumer(self._push)


class AmqpTransport:
    """A :class:`~petiole.transport.Transport` on RabbitMQ (see the module docstring)."""

    def __init__(self, target: AmqpTarget[AmqpOptions]) -> None:
        self.target = target
        self.options: AmqpOptions = target.options
        levels = self.options.delay_levels
        self.capabilities = TransportCapabilities(
            priorities=self.options.queue_type == "classic",
            max_delay_s=float(2**levels - 1),
            broadcast=False,
            max_message_bytes=self.options.max_message_bytes,
            leases_expire=False,
            counts_leased=False,
            max_unsettled_s=self.options.consumer_timeout_s,
            fifo=True,
            queue_preference=True,
        )
        self._outages = OutageTracker(
            logger,
            f"amqp broker {target.masked_url}",
            meanwhile=f"retrying with backoff for up to {self.options.reconnect_timeout_s:g} s",
        )
        self._admin = Admin(target.parameters(heartbeat=False))
        self._admin.on_reconnect = self._forget_reserved
        self._link: Link | None = None
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._declared: set[str] = set()
        # What this transport created, ("queue", name) or ("delays", queue): the
        # monotonic time until which publishing into it waits (see _settle_if).
        self._settles_until: dict[tuple[str, str], float] = {}
        self._delays_declared: set[str] = set()
        self._exchanges_declared = False
        self._serial = 0
        self._batches = threading.local()
        # Delivery tags of each consuming channel not acknowledged yet; only the I/O
        # thread reads or writes it (so a multiple ack never covers one of them).
        self._unsettled: dict[int, set[int]] = {}
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"AmqpTransport({self.target.masked_url!r})"

    # -- publishing -------------------------------------------------------------------

    def publish(
        self,
        queue: str,
        payload: bytes,
        *,
        message_id: str = "",
        delay_s: float = 0.0,
        priority: int = 0,
    ) -> None:
        self._check_size(payload)
        properties = self._properties(message_id, priority)
        batch: list[_Unconfirmed] | None = getattr(self._batches, "pending", None)
        if batch is not None:
            self._send_unconfirmed(batch, queue, payload, properties, delay_s=delay_s)
            return
        self._send(queue, payload, properties, delay_s=delay_s)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Publishes of this thread in the block are all in flight at once; the
        block's end waits for their confirms (:class:`~petiole.transport.PublishesInBatches`).
        One whose confirm did not come (an outage, a queue deleted meanwhile) is
        published again, waiting as :meth:`publish` does. A block left by an
        exception waits for its publishes too, as outside a block each would have."""
        if getattr(self._batches, "pending", None) is not None:
            yield  # inside a batch already (a group in a group): its end waits for all
            return
        pending: list[_Unconfirmed] = []
        self._batches.pending = pending
        try:
            yield
        finally:
            self._batches.pending = None
            self._await_confirms(pending)

    def _await_confirms(self, pending: list[_Unconfirmed]) -> None:
        """Wait for each publish of a block; publish again one whose confirm did not come."""
        for item in pending:
            try:
                # Each its own wait: one confirm late must not make the rest look lost.
                item.future.result(self.options.reply_timeout_s)
            except (TransportError, concurrent.futures.TimeoutError):
                self._send(item.queue, item.payload, item.properties, delay_s=item.delay_s)

    def _send_unconfirmed(
        self,
        batch: list[_Unconfirmed],
        queue: str,
        payload: bytes,
        properties: pika.BasicProperties,
        *,
        delay_s: float,
    ) -> None:
        exchange, routing_key = self._route(queue, delay_s)
        link = self._started_link()
        if not link.ever_connected:
            self._through_outage(
                lambda: link.wait_connected(self.options.reply_timeout_s),
                ever_connected=lambda: link.ever_connected,
            )
        # Not written by this thread: the I/O thread writes what queued up meanwhile
        # in one go, and nobody waits for this one's confirm before the batch ends.
        future = link.publish(exchange, routing_key, payload, properties, here=False)
        batch.append(_Unconfirmed(future, queue, payload, properties, delay_s))

    def _check_size(self, payload: bytes) -> None:
        limit = self.options.max_message_bytes
        if len(payload) > limit:
            raise MessageTooLarge(len(payload), limit, transport="amqp")

    def _properties(
        self, message_id: str, priority: int, headers: dict[str, Any] | None = None
    ) -> pika.BasicProperties:
        return pika.BasicProperties(
            delivery_mode=_PERSISTENT,
            message_id=message_id or None,
            priority=min(9, max(0, priority))
            if self.capabilities.priorities and priority
            else None,
            headers=headers or None,
        )

    def _send(
        self, queue: str, payload: bytes, properties: pika.BasicProperties, *, delay_s: float
    ) -> None:
        """Publish to ``queue`` (through the delay levels when ``delay_s``), confirmed."""
        for attempt in range(2):
            exchange, routing_key = self._route(queue, delay_s)
            try:
                self._confirmed(exchange, routing_key, payload, properties)
                return
            except (Unroutable, ChannelRefused):
                # Deleted since we declared it (a queue, a delay exchange: by an admin,
                # or a reset of the broker): declare again, once.
                with self._lock:
                    self._declared.discard(queue)
                    self._delays_declared.discard(queue)
                    self._exchanges_declared = False
                if attempt:
                    raise

    def _route(self, queue: str, delay_s: float) -> tuple[str, str]:
        """The exchange and routing key for ``queue`` (through the delay levels when
        ``delay_s``), declaring what they need the first time."""
        started = time.monotonic()
        self._ensure_queue(queue)
        self._settled(("queue", queue))
        if not topo.delay_seconds(min(delay_s, 1.0)):  # no delay (0, negative, NaN)
            return "", queue
        self._ensure_delays(queue)
        self._settled(("delays", queue))
        # The first delayed message of a queue waits for its levels to be declared
        # (and to settle): that time counts against its delay.
        delay_s -= time.monotonic() - started
        longest = 2**self.options.delay_levels - 1
        seconds = topo.delay_seconds(min(delay_s, longest))  # min(nan, x) stays nan: 0
        if not seconds:
            return "", queue
        return topo.delay_route(queue, seconds, self.options.delay_levels)

    def _confirmed(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties
    ) -> None:
        link = self._started_link()

        def attempt() -> None:
            link.wait_connected(self.options.reply_timeout_s)
            future = link.publish(exchange, routing_key, body, properties)
            try:
                future.result(self.options.reply_timeout_s)
            except concurrent.futures.TimeoutError:
                raise ConnectionLost(
                    f"no confirm within {self.options.reply_timeout_s:g} s"
                ) from None

        self._through_outage(attempt, ever_connected=lambda: link.ever_connected)

    def _started_link(self) -> Link:
        with self._lock:
            if self._closed.is_set():
                raise TransportError(f"the transport for {self.target.masked_url} is closed")
            if self._link is None:
                self._link = Link(
                    self.target.parameters(),
                    name="petiole-amqp-io",
                    outages=self._outages,
                )
            return self._link

    def _through_outage(self, attempt: Callable[[], T], *, ever_connected: Callable[[], bool]) -> T:
        """``attempt()``, again through an outage (:func:`._link.through_outage`)."""
        return through_outage(
            attempt,
            outages=self._outages,
            closed=self._closed,
            ever_connected=ever_connected(),
            options=self.options,
            component="amqp transport",
            masked_url=self.target.masked_url,
            error=TransportError,
        )

    def _admin_call(self, op: Callable[[Admin], T]) -> T:
        return self._through_outage(
            lambda: self._admin.run(op), ever_connected=lambda: self._admin.generation > 0
        )

    # -- topology ---------------------------------------------------------------------

    def _ensure_queue(self, queue: str) -> None:
        if queue in self._declared:
            return
        opts = self.options

        def declare(admin: Admin) -> bool:
            created = False
            if opts.queue_type == "quorum" and opts.delivery_limit:
                created |= self._declare(admin, topo.dead_queue(queue), topo.dead_queue_arguments())
            arguments = topo.queue_arguments(
                queue, queue_type=opts.queue_type, delivery_limit=opts.delivery_limit
            )
            return self._declare(admin, queue, arguments) or created

        self._settle_if(self._admin_call(declare), ("queue", queue))
        with self._lock:
            self._declared.add(queue)

    def _settle_if(self, created: bool, what: tuple[str, str]) -> None:
        """After creating ``what``, publish into it only ``new_queue_settle_s`` later.

        RabbitMQ 3.10 (Ra 2.2) records a new quorum queue's data directory without
        syncing it, for about half a second: a node killed in that window comes
        back with the queue empty and leaderless for good, and a classic queue
        declared just before a crash can be gone altogether. This transport's
        publishes into what it created wait out that window once
        (:meth:`_settled`), keeping the first messages out of it (README, "A broker
        crash right after a queue is created"); consuming from it does not wait,
        as there is nothing in it to lose.
        """
        if created and self.options.new_queue_settle_s > 0:
            with self._lock:
                self._settles_until[what] = time.monotonic() + self.options.new_queue_settle_s

    def _settled(self, what: tuple[str, str]) -> None:
        """Before publishing into ``what``: wait until it settled, if this transport
        created it moments ago."""
        until = self._settles_until.get(what)
        if until is None:
            return
        remaining = until - time.monotonic()
        if remaining > 0:
            self._closed.wait(remaining)
        with self._lock:
            self._settles_until.pop(what, None)

    def _declare(self, admin: Admin, queue: str, arguments: dict[str, Any]) -> bool:
        """Declare ``queue`` durable with ``arguments``; True when it did not exist."""
        created = not self._exists(admin, queue)
        try:
            admin.channel().queue_declare(queue, durable=True, arguments=arguments)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 406:
                raise ConfigError(
                    f"RabbitMQ refuses to declare queue {queue!r} with the arguments "
                    f"{arguments} ({exc.reply_text}): it exists with other ones — declared "
                    "by another client, or by Petiole with another queue_type or "
                    "delivery_limit. Delete the queue, or set the options to match it."
                ) from exc
            raise TransportError(f"cannot declare queue {queue!r}: {exc.reply_text}") from exc
        return created

    def _ensure_delays(self, queue: str) -> None:
        if queue in self._delays_declared:
            return
        levels = self.options.delay_levels
        queue_type = self.options.queue_type
        topo.check_delay_destination(queue, levels)

        def declare(admin: Admin) -> bool:
            created = False
            channel = admin.channel()
            if not self._exchanges_declared:
                for level in range(levels):
                    channel.exchange_declare(
                        topo.delay_exchange(level, levels), "topic", durable=True
                    )
                for level in range(1, levels):
                    channel.exchange_bind(
                        topo.delay_exchange(level - 1, levels),
                        topo.delay_exchange(level, levels),
                        routing_key=topo.skip_binding(level, levels),
                    )
            for level in range(levels):
                name = topo.delay_queue(queue, level)
                created |= self._declare(
                    admin,
                    name,
                    topo.delay_queue_arguments(queue, level, levels=levels, queue_type=queue_type),
                )
                channel = admin.channel()
                channel.queue_bind(
                    name,
                    topo.delay_exchange(level, levels),
                    routing_key=topo.level_binding(queue, level, levels, "1"),
                )
            channel.queue_bind(
                queue,
                topo.delay_exchange(0, levels),
                routing_key=topo.level_binding(queue, 0, levels, "0"),
            )
            return created

        self._settle_if(self._admin_call(declare), ("delays", queue))
        with self._lock:
            self._exchanges_declared = True
            self._delays_declared.add(queue)

    # -- consuming --------------------------------------------------------------------

    def consume(
        self,
        queues: Sequence[str],
        *,
        prefetch: int,
        lease_s: float,
        on_delivery: Callable[[Delivery], None],
    ) -> AmqpConsumer:
        names = check_queue_names(queues)
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, not {prefetch}")
        for name in names:
            self._ensure_queue(name)
        link = self._started_link()
        push: PushConsumer

        def on_message(
            channel: pika.channel.Channel,
            method: Any,
            properties: pika.BasicProperties,
            body: bytes,
        ) -> None:
            tag: int = method.delivery_tag
            if push.stopped:
                channel.basic_nack(tag, requeue=True)
                return
            queue = push.queue_of_tag.get(method.consumer_tag, method.routing_key)
            delivery = self._delivery(channel, tag, queue, properties, body, method.redelivered)
            self._unsettled.setdefault(id(channel), set()).add(tag)
            try:
                on_delivery(delivery)
            except Exception:
                logger.exception(
                    "the consumer callback failed on message %s of queue %r; it goes back",
                    delivery.message_id or "(no id)",
                    queue,
                )
                if self._claim(delivery) is not None:
                    self._unsettled.get(id(channel), set()).discard(tag)
                    channel.basic_nack(tag, requeue=True)

        push = PushConsumer(
            link,
            names,
            # Quorum queues have no channel-wide (global) prefetch, so the window is
            # split between the queues' consumers (README, "Prefetch").
            prefetch_each=max(1, prefetch // len(names)),
            on_message=on_message,
            on_lost=self._forget_channel,
        )

        link.start_consumer(
            push,
            timeout_s=self.options.reply_timeout_s,
            retry=lambda attempt: self._through_outage(
                attempt, ever_connected=lambda: link.ever_connected
            ),
        )
        return AmqpConsumer(self, push)

    def _delivery(
        self,
        channel: Any,
        tag: int,
        queue: str,
        properties: pika.BasicProperties,
        body: bytes,
        redelivered: bool,
        *,
        pushed: bool = True,
        generation: int = 0,
    ) -> Delivery:
        headers = _headers(properties)
        count = 1 + int(headers.get(topo.RETURNS, 0))
        broker = headers.get("x-delivery-count")
        if broker is not None:
            count += int(broker)
        elif redelivered:
            count += 1
        with self._lock:
            self._serial += 1
            receipt = f"{'p' if pushed else 'g'}{self._serial}"
            self._held[receipt] = _Held(channel, tag, properties, pushed, generation)
        return Delivery(
            payload=body,
            queue=queue,
            receipt=receipt,
            delivery_count=count,
            message_id=properties.message_id or "",
        )

    def _forget_channel(self, channel: Any) -> None:
        """The channel closed: its deliveries are back in the broker, their receipts stale."""
        self._unsettled.pop(id(channel), None)
        with self._lock:
            for receipt in [r for r, h in self._held.items() if h.channel is channel]:
                del self._held[receipt]

    def _forget_reserved(self) -> None:
        with self._lock:
            for receipt in [r for r, h in self._held.items() if not h.pushed]:
                del self._held[receipt]

    def _claim(self, delivery: Delivery) -> _Held | None:
        """Take the delivery's settlement: None when it is stale or already settled."""
        with self._lock:
            return self._held.pop(delivery.receipt, None)

    # -- reserving --------------------------------------------------------------------

    def reserve(
        self, queues: Sequence[str], *, max_messages: int, wait_s: float, lease_s: float
    ) -> list[Delivery]:
        names = check_queue_names(queues)
        for name in names:
            self._ensure_queue(name)
        deadline = time.monotonic() + max(0.0, wait_s)
        tries = 0
        while True:
            got = self._admin_call(lambda admin: self._get(admin, names, max_messages))
            if got or self._closed.is_set():
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            pause = min(left, _POLL_MAX_S, backoff_s(tries, first_s=0.002, cap_s=_POLL_MAX_S))
            tries += 1
            if self._closed.wait(pause):
                return []

    def _get(self, admin: Admin, queues: list[str], max_messages: int) -> list[Delivery]:
        channel = admin.channel("getter")
        got: list[Delivery] = []
        for queue in queues:
            while len(got) < max_messages:
                method, properties, body = channel.basic_get(queue, auto_ack=False)
                if method is None or method.delivery_tag is None:
                    break
                assert properties is not None  # with a GetOk, always
                assert body is not None
                got.append(
                    self._delivery(
                        channel,
                        method.delivery_tag,
                        queue,
                        properties,
                        body,
                        method.redelivered,
                        pushed=False,
                        generation=admin.generation,
                    )
                )
        return got

    # -- settling ---------------------------------------------------------------------

    def ack(self, delivery: Delivery) -> None:
        held = self._claim(delivery)
        if held is not None:
            self._ack([held])

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        claimed = [h for h in map(self._claim, deliveries) if h is not None]
        if claimed:
            self._ack(claimed)

    def _ack(self, held: list[_Held]) -> None:
        """Acknowledge: pushed deliveries on the I/O thread, as few ``basic.ack``
        frames as their channels allow (:meth:`_ack_tags`)."""
        pushed = [h for h in held if h.pushed]
        if pushed and self._link is not None:

            def on_io_thread() -> None:
                by_channel: dict[int, tuple[Any, list[int]]] = {}
                for h in pushed:
                    by_channel.setdefault(id(h.channel), (h.channel, []))[1].append(h.tag)
                for channel, tags in by_channel.values():
                    if channel.is_open:
                        self._ack_tags(channel, tags)

            self._link.submit(on_io_thread, here=True)
        self._settle([h for h in held if not h.pushed], lambda ch, tag: ch.basic_ack(tag))

    def _ack_tags(self, channel: Any, tags: list[int]) -> None:
        """On the I/O thread: one ``basic.ack`` with ``multiple`` for every tag below
        the channel's oldest delivery still unsettled, one each for the rest."""
        unsettled = self._unsettled.get(id(channel), set())
        unsettled.difference_update(tags)
        oldest = min(unsettled) if unsettled else None
        tags.sort()
        below = [t for t in tags if oldest is None or t < oldest]
        if below:
            channel.basic_ack(below[-1], multiple=True)
        for tag in tags[len(below) :]:
            channel.basic_ack(tag)

    def _settle(self, held: list[_Held], settle: Callable[[Any, int], None]) -> None:
        pushed = [h for h in held if h.pushed]
        reserved = [h for h in held if not h.pushed]
        if pushed and self._link is not None:

            def on_io_thread() -> None:
                for h in pushed:
                    if h.channel.is_open:
                        settle(h.channel, h.tag)

            self._link.submit(on_io_thread)
        if reserved:

            def on_admin(admin: Admin) -> None:
                for h in reserved:
                    if h.generation == admin.generation and h.channel.is_open:
                        settle(h.channel, h.tag)

            # A lost connection took them with it: the broker has them back.
            with contextlib.suppress(ConnectionLost):
                self._admin.run(on_admin)

    def nack(self, delivery: Delivery, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        held = self._claim(delivery)
        if held is None:
            return
        if not requeue:
            self._ack([held])
            return
        headers = _copy_headers(held.properties)
        headers[topo.RETURNS] = delivery.delivery_count
        self._republish(held, delivery, delivery.queue, headers, delay_s=delay_s)

    def dead_letter(self, delivery: Delivery, *, reason: str) -> None:
        # Declared before the receipt is taken: if this fails, the delivery is
        # still the caller's, and comes back as any unsettled one does.
        self._ensure_dead_queue(delivery.queue)
        self._settled(("queue", topo.dead_queue(delivery.queue)))
        held = self._claim(delivery)
        if held is None:
            return
        headers = _copy_headers(held.properties)
        headers.pop(topo.RETURNS, None)
        headers.update(
            {
                topo.REASON: reason,
                topo.DEAD_AT: int(time.time() * 1000),  # AMQP field tables have no float
                topo.DEAD_ID: uuid.uuid4().hex,
                topo.DEAD_COUNT: delivery.delivery_count,
            }
        )
        self._republish(held, delivery, topo.dead_queue(delivery.queue), headers, delay_s=0.0)

    def _republish(
        self,
        held: _Held,
        delivery: Delivery,
        queue: str,
        headers: dict[str, Any],
        *,
        delay_s: float,
    ) -> None:
        """Publish a copy, confirmed, then acknowledge the original; if the copy cannot
        be published, close the delivering channel so the broker returns the original."""
        original = held.properties
        properties = pika.BasicProperties(
            delivery_mode=_PERSISTENT,
            message_id=original.message_id,
            priority=original.priority,
            headers=headers,
        )
        link = self._link
        if held.pushed and link is not None and link.on_io_thread():
            # Called from on_delivery (a worker dead-lettering a poison message as it
            # arrives): the confirm can only come on this very thread, so the ack is
            # chained to it instead of waited for.
            self._republish_later(link, held, queue, delivery.payload, properties, delay_s)
            return
        try:
            self._send(queue, delivery.payload, properties, delay_s=delay_s)
        except BaseException:
            self._abandon(held)
            raise
        self._ack([held])

    def _republish_later(
        self,
        link: Link,
        held: _Held,
        queue: str,
        payload: bytes,
        properties: pika.BasicProperties,
        delay_s: float,
    ) -> None:
        """On the I/O thread: publish the copy, and acknowledge the original when its
        confirm comes (or close the delivering channel, returning it, if it fails)."""
        try:
            exchange, routing_key = self._route(queue, delay_s)
        except BaseException:
            self._abandon(held)
            raise
        future = link.publish(exchange, routing_key, payload, properties)

        def confirmed(done: Confirmation) -> None:
            if done.exception() is None:
                self._ack([held])
            else:
                logger.warning(
                    "could not republish a message of queue %r (%s); it goes back",
                    queue,
                    done.exception(),
                )
                self._abandon(held)

        future.add_done_callback(confirmed)

    def _abandon(self, held: _Held) -> None:
        def close(channel: Any, _tag: int) -> None:
            channel.close()

        try:
            self._settle([held], close)
        except (TransportError, pika.exceptions.AMQPError):
            logger.debug("closing a channel to return a message failed", exc_info=True)

    def _ensure_dead_queue(self, queue: str) -> None:
        name = topo.dead_queue(queue)
        if name in self._declared:
            return
        arguments = topo.dead_queue_arguments()
        created = self._admin_call(lambda admin: self._declare(admin, name, arguments))
        self._settle_if(created, ("queue", name))
        with self._lock:
            self._declared.add(name)

    def extend(self, delivery: Delivery, *, lease_s: float) -> bool:
        held = self._held.get(delivery.receipt)
        return held is not None and bool(held.channel.is_open)

    # -- counting and purging -----------------------------------------------------------

    def _count(self, admin: Admin, queue: str, op: str) -> int:
        """``op`` ("size" or "purge") on one queue; 0 when it does not exist."""
        channel = admin.channel()
        try:
            if op == "purge":
                return int(channel.queue_purge(queue).method.message_count or 0)
            return int(channel.queue_declare(queue, passive=True).method.message_count or 0)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return 0
            raise TransportError(f"cannot {op} queue {queue!r}: {exc.reply_text}") from exc

    def _over_levels(self, queue: str, op: str) -> int:
        def run(admin: Admin) -> int:
            total = self._count(admin, queue, op)
            levels = self.options.delay_levels
            if self._exists(admin, topo.delay_queue(queue, levels - 1)):
                total += sum(
                    self._count(admin, topo.delay_queue(queue, k), op) for k in range(levels)
                )
            return total

        return self._admin_call(run)

    def _exists(self, admin: Admin, queue: str) -> bool:
        try:
            admin.channel().queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return False
            raise
        return True

    def size(self, queue: str) -> int:
        return self._over_levels(queue, "size")

    def purge(self, queue: str) -> int:
        return self._over_levels(queue, "purge")

    # -- dead letters -------------------------------------------------------------------

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters. AMQP cannot peek: every dead letter is
        read without acknowledgement and returned by closing the channel. A quorum
        queue returns them to its back, in the order read, so reading all of them
        keeps their order; the list is sorted by when each died."""

        def peek(admin: Admin) -> list[DeadLetter]:
            name = topo.dead_queue(queue)
            total = self._count(admin, name, "size")
            channel = admin.temporary_channel()
            found: list[DeadLetter] = []
            try:
                for _ in range(total):
                    method, properties, body = _get_or_none(channel, name)
                    if method is None:
                        break
                    found.append(_dead_letter(queue, properties, body))
            finally:
                if channel.is_open:
                    channel.close()
            found.sort(key=lambda dead: dead.dead_at)
            return found[:limit]

        return self._admin_call(peek)

    def requeue_dead_letters(self, queue: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        wanted = None if dead_letter_ids is None else set(dead_letter_ids)
        self._ensure_queue(queue)
        self._settled(("queue", queue))

        def take(admin: Admin) -> tuple[Any, list[tuple[int, pika.BasicProperties, bytes]]]:
            channel = admin.temporary_channel()
            chosen: list[tuple[int, pika.BasicProperties, bytes]] = []
            total = self._count(admin, topo.dead_queue(queue), "size")
            for _ in range(total):
                method, properties, body = _get_or_none(channel, topo.dead_queue(queue))
                if method is None:
                    break
                if wanted is None or _dead_id(properties) in wanted:
                    chosen.append((method.delivery_tag, properties, body))
            return channel, chosen

        channel, chosen = self._admin_call(take)
        moved = 0
        try:
            for tag, properties, body in chosen:
                headers = {
                    k: v
                    for k, v in _copy_headers(properties).items()
                    if not k.startswith("x-petiole-")
                }
                copy = pika.BasicProperties(
                    delivery_mode=_PERSISTENT,
                    message_id=properties.message_id,
                    priority=properties.priority,
                    headers=headers or None,
                )
                self._send(queue, body, copy, delay_s=0.0)
                self._admin.run(partial(_ack_on, channel, tag))
                moved += 1
        finally:
            with self._admin.lock:
                if channel.is_open:
                    channel.close()  # the rest go back to the dead-letter queue
        return moved

    def purge_dead_letters(self, queue: str) -> int:
        return self._admin_call(lambda admin: self._count(admin, topo.dead_queue(queue), "purge"))

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            link, self._link = self._link, None
            self._held.clear()
        if link is not None:
            link.close()
        self._admin.close()


def _headers(properties: pika.BasicProperties) -> dict[str, Any]:
    """The message's headers, untyped: pika types a field table's values as a union
    no reader can use without checks the broker already made."""
    return dict(properties.headers or {})


def _copy_headers(properties: pika.BasicProperties) -> dict[str, Any]:
    return {k: v for k, v in _headers(properties).items() if k not in topo.BROKER_HEADERS}


def _ack_on(channel: Any, tag: int, _admin: Admin) -> None:
    channel.basic_ack(tag)


def _get_or_none(channel: Any, queue: str) -> tuple[Any, Any, Any]:
    try:
        return channel.basic_get(queue, auto_ack=False)  # type: ignore[no-any-return]
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return None, None, None
        raise


def _dead_letter(queue: str, properties: pika.BasicProperties, body: bytes) -> DeadLetter:
    headers = _headers(properties)
    reason = headers.get(topo.REASON)
    if reason is None:
        reason = _broker_reason(headers)
    dead_at_ms = headers.get(topo.DEAD_AT)
    if dead_at_ms is not None:
        dead_at = int(dead_at_ms) / 1000
    else:
        deaths = headers.get("x-death") or [{}]
        stamp = deaths[0].get("time")
        dead_at = stamp.timestamp() if hasattr(stamp, "timestamp") else 0.0
    return DeadLetter(
        dead_letter_id=_dead_id(properties),
        queue=queue,
        reason=str(reason),
        delivery_count=int(headers.get(topo.DEAD_COUNT) or _broker_count(headers)),
        dead_at=float(dead_at),
        payload=body,
    )


def _dead_id(properties: pika.BasicProperties) -> str:
    """A dead letter's id: the one the transport gave it, or for one the broker
    dead-lettered (its delivery limit) the message id."""
    headers = _headers(properties)
    return str(headers.get(topo.DEAD_ID) or properties.message_id or "")


def _broker_reason(headers: Mapping[str, Any]) -> str:
    deaths = headers.get("x-death") or [{}]
    why = deaths[0].get("reason", "unknown")
    if isinstance(why, bytes):
        why = why.decode()
    return f"RabbitMQ dead-lettered it ({why}): the queue's delivery limit, or its policy"


def _broker_count(headers: Mapping[str, Any]) -> int:
    return int(headers.get("x-delivery-count") or 0) + int(headers.get(topo.RETURNS) or 0) + 1


def create_transport(url: str, options: Mapping[str, Any]) -> AmqpTransport:
    """The factory registered for ``amqp://`` and ``amqps://`` (``petiole_transports``)."""
    return AmqpTransport(parse_url(url, options, component="broker", options_type=AmqpOptions))
