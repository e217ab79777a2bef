"""One AMQP connection owned by an I/O thread: publishing with confirms, and push consumers.

pika is not thread-safe, and AMQP wants a delivery acknowledged on the channel
that delivered it. So one thread runs pika's ``SelectConnection`` and is the
only one that touches it; every other thread hands it work:

* :meth:`Link.submit` queues a callable for the I/O thread (one wake-up of its
  loop for however many are queued), the way acks from pool threads reach
  their channel;
* :meth:`Link.publish` queues a publish on the confirm-mode channel and returns
  a future, resolved when the broker confirms the message (``basic.ack``, many
  at once with ``multiple``). Many publishes are in flight at once, so
  concurrent or bulk producers share each confirm round trip;
* :class:`PushConsumer` consumes on a channel of its own, with the prefetch
  window as ``basic.qos``, and calls its callback on the I/O thread.

When the connection drops, the link reconnects with backoff (one log line per
outage, :class:`~petiole.outages.OutageTracker`), reopens its consumers, and
fails every unconfirmed publish with :class:`ConnectionLost` (its caller
publishes again: at least once). Deliveries of the lost connection are stale.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pika
import pika.channel
import pika.exceptions
import pika.frame
import pika.spec
from pika.adapters.select_connection import IOLoop

from petiole.errors import TransportError
from petiole.outages import (
    Closed,
    DownTooLong,
    OutageTracker,
    StillDown,
    backoff_s,
    call_through_outage,
)
from petiole.urls import mask_text
from petiole_amqp._options import ConnectionOptions
from petiole_amqp._pika_logs import quiet_pika
from petiole_amqp._wire import WireConnection, lock_released_while_polling

logger = logging.getLogger("petiole_amqp")
quiet_pika()


class ConnectionLost(TransportError):
    """The connection (or channel) a call needed went away before it completed;
    the outcome is unknown and the caller may try again."""


class Unroutable(TransportError):
    """The broker confirmed a mandatory publish that reached no queue."""


class ChannelRefused(TransportError):
    """The broker closed the publishing channel over an error of a publish (an
    exchange that no longer exists); the unconfirmed publishes on it failed."""


class Refused(TransportError):
    """The broker refused the message (``basic.nack``)."""


class Confirmation:
    """The outcome of one publish, settled on the I/O thread: the part of
    :class:`concurrent.futures.Future` a publisher uses, without a lock and a
    condition built per message (11 % of a bulk producer's time, profiled).
    Every confirmation of a link shares the link's condition, notified once per
    confirm frame — one ``basic.ack`` with ``multiple`` settles thousands."""

    __slots__ = ("_callbacks", "_condition", "_error", "_settled")

    def __init__(self, condition: threading.Condition) -> None:
        self._condition = condition
        self._settled = False
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Confirmation], None]] | None = None

    def done(self) -> bool:
        return self._settled

    def exception(self) -> BaseException | None:
        """The publish's error once settled (None: confirmed, or not settled yet)."""
        return self._error

    def add_done_callback(self, callback: Callable[[Confirmation], None]) -> None:
        """Call ``callback(self)`` once settled: at once if it is, else on the I/O
        thread when it settles."""
        with self._condition:
            if not self._settled:
                self._callbacks = [*(self._callbacks or ()), callback]
                return
        callback(self)

    def result(self, timeout: float | None = None) -> None:
        """Return once confirmed; raise the publish's error, or
        :class:`concurrent.futures.TimeoutError` after ``timeout`` seconds."""
        if not self._settled:
            deadline = None if timeout is None else time.monotonic() + timeout
            with self._condition:
                while not self._settled:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise concurrent.futures.TimeoutError()
                    self._condition.wait(remaining)
        if self._error is not None:
            raise self._error

    def _settle(self, error: BaseException | None, ran: list[Confirmation]) -> None:
        # Callers hold the condition, notify it once they have settled a batch, and
        # then (not holding it) run the callbacks of those appended to ``ran``.
        if not self._settled:
            self._error = error
            self._settled = True
            if self._callbacks:
                ran.append(self)

    def _run_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks or [], None
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                logger.exception("a publish confirmation's callback failed")


def _settle_all(
    condition: threading.Condition, outcomes: Iterable[tuple[Confirmation, BaseException | None]]
) -> None:
    """Settle confirmations: one notification for all, callbacks run after it."""
    ran: list[Confirmation] = []
    with condition:
        for confirmation, error in outcomes:
            confirmation._settle(error, ran)
        condition.notify_all()
    for confirmation in ran:
        confirmation._run_callbacks()


def _settle_now(confirmation: Confirmation, error: BaseException | None) -> None:
    _settle_all(confirmation._condition, [(confirmation, error)])


@dataclass(slots=True)
class _Pending:
    future: Confirmation
    exchange: str
    routing_key: str
    body: bytes
    returned: bool = False


@dataclass(slots=True)
class Session:
    """One live connection: what its callbacks share. Replaced on reconnect."""

    generation: int
    connection: WireConnection
    settled: threading.Condition  # the link's, which every Confirmation waits on
    publisher: pika.channel.Channel | None = None
    pending: collections.OrderedDict[int, _Pending] = field(default_factory=collections.OrderedDict)
    next_tag: int = 1


class Link:
    """An AMQP connection in a thread of its own (see the module docstring)."""

    def __init__(
        self,
        parameters: Sequence[pika.ConnectionParameters],
        *,
        name: str,
        outages: OutageTracker,
    ) -> None:
        self._parameters = list(parameters)
        self._host_index = 0
        self._name = name
        self._outages = outages
        self._ioloop = IOLoop()
        # Held by the I/O thread except while it waits for the socket (_wire).
        self._io_lock = lock_released_while_polling(self._ioloop)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._settled = threading.Condition()  # of every Confirmation of this link
        self._session: Session | None = None
        self._generation = 0
        self._attempts = 0
        self._last_error = ""
        self._ever_connected = False
        self._closing = False
        self._closed = threading.Event()
        self._consumers: list[PushConsumer] = []
        self._outbox: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_pending = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- any thread ----------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def wait_connected(self, timeout_s: float) -> int:
        """Wait until the connection is up; its generation. Raises :class:`ConnectionLost`
        with the last error when it is not up within ``timeout_s``."""
        with self._changed:
            if self._session is None and not self._closing:
                self._changed.wait_for(
                    lambda: self._session is not None or self._closing, timeout_s
                )
            if self._closing:
                raise ConnectionLost("the transport is closed")
            if self._session is None:
                raise ConnectionLost(self._last_error or "not connected yet")
            return self._session.generation

    @property
    def ever_connected(self) -> bool:
        return self._ever_connected

    def on_io_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, work: Callable[[], None], *, here: bool = False) -> None:
        """Run ``work`` on the I/O thread, soon, in the order submitted.

        With ``here``, when the I/O thread is waiting for the socket, this thread
        runs it (and whatever was submitted before it) at once, holding the
        connection the I/O thread would: no hand-off between threads, which is
        most of a single publish's latency (:mod:`._wire`). Only for work that is
        short and sets no timer: publishes and acks.
        """
        self._outbox.append(work)
        if here and self._io_lock.acquire(blocking=False):
            try:
                self._drain_held()
            finally:
                self._io_lock.release()
            return
        with self._lock:
            if self._wake_pending or self._closing:
                return
            self._wake_pending = True
        self._ioloop.add_callback_threadsafe(self._drain)

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
        *,
        generation: int | None = None,
        here: bool = True,
    ) -> Confirmation:
        """Publish as persistent and mandatory; the confirmation settles with the confirm.

        ``here`` (see :meth:`submit`) suits a publish whose caller waits for its
        confirm; a batch's publishes (``here=False``) are left to the I/O thread,
        which writes all those queued meanwhile in one go.

        It fails with :class:`ConnectionLost` when the connection is down or
        drops first (or is not ``generation``, when given), :class:`Unroutable`
        when no queue took the message, :class:`Refused` on a ``basic.nack``.
        """
        future = Confirmation(self._settled)
        if self._closing:
            _settle_now(future, ConnectionLost("the connection is closed"))
            return future

        def send() -> None:
            session = self._session
            if session is None or session.publisher is None:
                _settle_now(future, ConnectionLost(self._last_error or "not connected"))
                return
            if generation is not None and session.generation != generation:
                _settle_now(future, ConnectionLost("the connection was replaced"))
                return
            try:
                session.publisher.basic_publish(
                    exchange, routing_key, body, properties, mandatory=True
                )
            except (
                pika.exceptions.AMQPConnectionError,
                pika.exceptions.ChannelWrongStateError,
                OSError,
            ) as exc:
                _settle_now(future, ConnectionLost(describe(exc)))
                return
            except Exception as exc:  # a property pika cannot encode: no retry helps
                _settle_now(future, TransportError(f"cannot publish: {describe(exc)}"))
                return
            session.pending[session.next_tag] = _Pending(future, exchange, routing_key, body)
            session.next_tag += 1

        self.submit(send, here=here)
        return future

    def add_consumer(self, consumer: PushConsumer) -> None:
        with self._lock:
            if consumer in self._consumers:
                return
            self._consumers.append(consumer)
        self.submit(lambda: self._open_consumer(consumer))

    def start_consumer(
        self,
        consumer: PushConsumer,
        *,
        timeout_s: float,
        retry: Callable[[Callable[[], None]], None],
    ) -> None:
        """Consume with ``consumer`` and return once the broker has it, the attempts
        run by ``retry`` (through an outage); on failure the consumer is dropped."""

        def attempt() -> None:
            self.wait_connected(timeout_s)
            self.add_consumer(consumer)
            try:
                consumer.started.result(timeout_s)
            except concurrent.futures.TimeoutError:
                raise ConnectionLost("the broker did not confirm the consumer") from None
            except ConnectionLost:
                consumer.restart_pending()
                raise

        try:
            retry(attempt)
        except BaseException:
            self.remove_consumer(consumer)
            consumer.stopped = True
            # A consume-ok that comes after giving up must not leave a consumer
            # running (it would return every delivery): cancel it there.
            self.submit(consumer.stop)
            raise

    def remove_consumer(self, consumer: PushConsumer) -> None:
        with self._lock:
            if consumer in self._consumers:
                self._consumers.remove(consumer)

    def close(self, timeout_s: float = 10.0) -> None:
        """Close the connection and end the thread; pending publishes fail."""
        with self._changed:
            if self._closing:
                already = True
            else:
                already = False
                self._closing = True
                self._changed.notify_all()
        if not already:
            self._ioloop.add_callback_threadsafe(self._shut_down)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        self._closed.set()

    # -- the I/O thread ----------------------------------------------------------------

    def _run(self) -> None:
        # Never released by this thread but around its waits in epoll (so, once the
        # loop ends, no caller runs work here any more).
        self._io_lock.acquire()
        self._ioloop.add_callback_threadsafe(self._connect)
        try:
            self._ioloop.start()
        except Exception:
            logger.exception("%s: the I/O loop failed", self._name)
        finally:
            self._fail_all(ConnectionLost("the transport is closed"))
            self._closed.set()
            self._ioloop.close()

    def _drain(self) -> None:
        with self._lock:
            self._wake_pending = False
        self._drain_held()

    def _drain_held(self) -> None:
        """Run the outbox, on the I/O thread or holding its lock."""
        session = self._session
        if session is None:
            self._run_outbox()
            return
        with session.connection.holding():
            self._run_outbox()

    def _run_outbox(self) -> None:
        while self._outbox:
            work = self._outbox.popleft()
            try:
                work()
            except Exception:
                logger.exception("%s: work on the I/O thread failed", self._name)

    def _connect(self) -> None:
        if self._closing:
            return
        parameters = self._parameters[self._host_index % len(self._parameters)]
        WireConnection(
            parameters,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
            custom_ioloop=self._ioloop,
        )

    def _retry_later(self, reason: str) -> None:
        self._last_error = reason
        self._outages.failed(reason)
        self._host_index += 1  # a cluster: try the next node
        delay = backoff_s(self._attempts, first_s=0.1, cap_s=2.0)
        self._attempts += 1
        if not self._closing:
            self._ioloop.call_later(delay, self._connect)
        with self._changed:
            self._changed.notify_all()  # wake callers waiting for a first connection

    def _on_open_error(self, connection: Any, error: BaseException) -> None:
        self._retry_later(describe(error))

    def _on_open(self, connection: Any) -> None:
        self._generation += 1
        session = Session(self._generation, connection, self._settled)
        connection.channel(on_open_callback=lambda channel: self._on_publisher(session, channel))

    def _on_publisher(
        self, session: Session, channel: pika.channel.Channel, *, reopened: bool = False
    ) -> None:
        channel.add_on_return_callback(
            lambda ch, method, props, body: _returned(session, method, body)
        )
        channel.add_on_close_callback(lambda ch, reason: self._on_publisher_closed(session, reason))

        def selected(_frame: pika.frame.Method[Any]) -> None:
            session.publisher = channel
            if reopened:
                return
            self._attempts = 0
            self._ever_connected = True
            self._outages.succeeded()
            with self._changed:
                self._session = session
                consumers = list(self._consumers)
                self._changed.notify_all()
            for consumer in consumers:
                self._open_consumer(consumer)

        channel.confirm_delivery(lambda frame: _confirmed(session, frame), callback=selected)

    def _on_publisher_closed(self, session: Session, reason: BaseException) -> None:
        """The publishing channel closed. Closed by the broker for an error of a
        publish (an exchange deleted under it: 404) while the connection lives, its
        unconfirmed publishes fail with :class:`ChannelRefused` (the caller may
        declare again and resend) and a new channel replaces it, leaving the
        consumers' channels, and the deliveries they hold, alone."""
        session.publisher = None
        if self._closing or not session.connection.is_open:
            _fail_pending(session, ConnectionLost(f"publisher channel closed: {describe(reason)}"))
            return
        _fail_pending(
            session, ChannelRefused(f"the broker closed the publishing channel: {describe(reason)}")
        )
        session.next_tag = 1  # a new channel counts its publishes from 1
        session.connection.channel(
            on_open_callback=lambda channel: self._on_publisher(session, channel, reopened=True)
        )

    def _on_closed(self, connection: Any, reason: BaseException) -> None:
        with self._changed:
            session = self._session
            if session is not None and session.connection is connection:
                self._session = None
            self._changed.notify_all()
        if session is not None:
            _fail_pending(session, ConnectionLost(f"connection lost: {describe(reason)}"))
        if self._closing:
            self._ioloop.stop()
            return
        self._retry_later(describe(reason))

    def _open_consumer(self, consumer: PushConsumer) -> None:
        session = self._session
        if session is None or self._closing:
            return  # opened when the connection is back
        consumer.open(session)

    def _shut_down(self) -> None:
        session = self._session
        for consumer in list(self._consumers):
            consumer.stop()
        if session is not None and session.connection.is_open:
            session.connection.close()
            return  # _on_closed stops the loop
        if session is None:
            # Connecting or waiting to: a connection still opening calls _on_closed or
            # _on_open_error later, which would not stop a loop already stopped.
            self._ioloop.stop()

    def _fail_all(self, error: TransportError) -> None:
        session = self._session
        if session is not None:
            _fail_pending(session, error)
        while self._outbox:
            work = self._outbox.popleft()
            try:
                work()  # with no session, publishes fail with ConnectionLost
            except Exception:
                logger.debug("%s: work dropped at close", self._name, exc_info=True)


T = TypeVar("T")


def through_outage(
    attempt: Callable[[], T],
    *,
    outages: OutageTracker,
    closed: threading.Event,
    ever_connected: bool,
    options: ConnectionOptions,
    component: str,
    masked_url: str,
    error: Callable[[str], Exception],
) -> T:
    """``attempt()``, again through an outage (:class:`ConnectionLost`): for
    ``reconnect_timeout_s`` once ``component`` has been connected, for
    ``connect_timeout_s`` before that, so a wrong URL fails fast. Fails with
    ``error(message)``: naming the URL (masked) and the last cause, or that the
    component is closed."""
    limit = options.reconnect_timeout_s if ever_connected else options.connect_timeout_s
    try:
        return call_through_outage(
            attempt,
            outages=outages,
            is_outage=lambda exc: isinstance(exc, ConnectionLost),
            reason=str,
            closed=closed,
            limit_s=limit,
        )
    except Closed:
        raise error(f"the {component} for {masked_url} is closed") from None
    except (DownTooLong, StillDown) as exc:
        verb = "lost" if ever_connected else "cannot connect to"
        raise error(
            f"{component}: {verb} RabbitMQ at {masked_url} for {exc.down_for_s:.1f} s: {exc.reason}"
        ) from exc


def _confirmed(session: Session, frame: pika.frame.Method[Any]) -> None:
    method = frame.method
    tag: int = method.delivery_tag
    multiple: bool = method.multiple
    nacked = isinstance(method, pika.spec.Basic.Nack)
    if multiple:
        done = []
        while session.pending:
            first = next(iter(session.pending))
            if first > tag:
                break
            done.append(session.pending.popitem(last=False)[1])
    else:
        one = session.pending.pop(tag, None)
        done = [one] if one is not None else []
    _settle_all(session.settled, ((pending.future, _outcome(pending, nacked)) for pending in done))


def _outcome(pending: _Pending, nacked: bool) -> TransportError | None:
    if nacked:
        return Refused("the broker refused the message (basic.nack)")
    if pending.returned:
        return Unroutable(
            f"no queue took the message sent to exchange {pending.exchange!r} "
            f"with routing key {pending.routing_key!r}"
        )
    return None


def _returned(session: Session, method: Any, body: bytes) -> None:
    """A mandatory publish reached no queue: ``basic.return`` comes before its confirm,
    without its delivery tag. Returns of one channel come in publish order, so the
    oldest unconfirmed publish with the same route and body is the one returned."""
    for pending in session.pending.values():
        if (
            not pending.returned
            and pending.routing_key == method.routing_key
            and pending.exchange == method.exchange
            and pending.body == body
        ):
            pending.returned = True
            return


def _fail_pending(session: Session, error: TransportError) -> None:
    pending, session.pending = session.pending, collections.OrderedDict()
    _settle_all(session.settled, ((item.future, error) for item in pending.values()))


def describe(error: BaseException) -> str:
    """An error in one line, secrets masked. pika's connection errors have no text
    of their own (``str()`` is empty); their repr carries the cause
    (``ConnectionRefusedError(111, 'Connection refused')``)."""
    name = type(error).__name__
    text = str(error) or repr(error).removeprefix(f"{name}: ")
    return mask_text(f"{name}: {text}")


Declaration = tuple[str, bool, dict[str, Any]]
"""A queue a consumer declares before consuming: (name, durable, arguments)."""

OnMessage = Callable[[pika.channel.Channel, Any, pika.BasicProperties, bytes], None]


class PushConsumer:
    """Consumers of some queues on one channel of a :class:`Link`, reopened after outages.

    ``on_open(channel)`` is called on the I/O thread each time the channel opens
    (before any delivery on it) and ``on_lost(channel)`` each time it closes;
    ``on_message`` for each delivery. All on the I/O thread.
    """

    def __init__(
        self,
        link: Link,
        queues: Sequence[str],
        *,
        prefetch_each: int,
        on_message: OnMessage,
        on_lost: Callable[[pika.channel.Channel], None],
        declare: Sequence[Declaration] = (),
    ) -> None:
        self._link = link
        self._declare = list(declare)
        self.queues = list(queues)
        self._prefetch_each = prefetch_each
        self._on_message = on_message
        self._on_lost = on_lost
        self.channel: pika.channel.Channel | None = None
        self.stopped = False
        self.started: Future[None] = Future()
        self.queue_of_tag: dict[str, str] = {}

    def restart_pending(self) -> None:
        """A failed start: the next opening of the channel reports afresh."""
        if self.started.done() and self.started.exception() is not None:
            self.started = Future()

    def open(self, session: Session) -> None:
        if self.stopped:
            return

        def opened(channel: pika.channel.Channel) -> None:
            if self.stopped:
                channel.close()
                return
            self.channel = channel
            channel.add_on_close_callback(self._closed)
            waiting = list(self.queues)

            def qos_ok(_frame: pika.frame.Method[Any]) -> None:
                for queue in self.queues:
                    tag = channel.basic_consume(queue, self._on_message, callback=consume_ok(queue))
                    self.queue_of_tag[tag] = queue

            def consume_ok(queue: str) -> Callable[[pika.frame.Method[Any]], None]:
                def done(_frame: pika.frame.Method[Any]) -> None:
                    waiting.remove(queue)
                    if not waiting and not self.started.done():
                        self.started.set_result(None)

                return done

            def declare_next(_frame: pika.frame.Method[Any] | None = None) -> None:
                if pending:
                    queue, durable, arguments = pending.pop(0)
                    channel.queue_declare(
                        queue, durable=durable, arguments=arguments, callback=declare_next
                    )
                else:
                    channel.basic_qos(prefetch_count=self._prefetch_each, callback=qos_ok)

            # Queues that must exist before consuming (a reply queue the broker may
            # have dropped in a restart) are declared on this channel, every time.
            pending = list(self._declare)
            declare_next()

        session.connection.channel(on_open_callback=opened)

    def _closed(self, channel: pika.channel.Channel, reason: BaseException) -> None:
        if self.channel is channel:
            self.channel = None
        self.queue_of_tag.clear()
        self._on_lost(channel)
        if not self.started.done():
            self.started.set_exception(ConnectionLost(f"cannot consume: {describe(reason)}"))
            return
        if self.stopped or self._link.closed:
            return
        # Closed by the broker (a consumer timeout, a deleted queue) while the
        # connection lives: consume again after a pause, on a fresh channel.
        connection = channel.connection
        if connection.is_open:
            logger.warning(
                "consumer of %s: channel closed (%s); consuming again in 1 s",
                self.queues,
                describe(reason),
            )
            self._link._ioloop.call_later(1.0, lambda: self._reopen(connection))

    def _reopen(self, connection: Any) -> None:
        session = self._link._session
        if session is not None and session.connection is connection and not self.stopped:
            self.open(session)

    def stop(self) -> None:
        """Cancel the consumers, keep the channel: deliveries handed out stay
        settle-able. On the I/O thread."""
        self.stopped = True
        channel = self.channel
        if channel is not None and channel.is_open:
            for tag in self.queue_of_tag:
                channel.basic_cancel(tag)
