"""The ``rpc://`` result backend: results come back to their sender as messages.

Nothing is stored. Each client (each backend instance) has a reply queue of its
own, ``petiole.reply.<random>``: a transient classic queue that RabbitMQ deletes
``reply_expires_s`` after its client went away (``x-expires``), so results sent
while the client reconnects wait in it. A producer puts the queue's name in the
``reply_to`` header of every task it sends (:meth:`RpcBackend.reply_address`,
asked by the core's sender); the worker addresses every record of the task
(STARTED, RETRY, the outcome) to it; :meth:`RpcBackend.store` publishes the
record there, transient and confirmed, and the client's consumer puts it in an
in-memory table that ``get``/``wait`` read. So:

* no polling: ``wait`` sleeps on a condition the consumer notifies;
* only the sender reads a task's result, and only while it runs (as Celery's
  ``rpc`` backend); a record addressed to a client that is gone is dropped;
* ``ttl_s`` does not apply: a record stays in memory until forgotten, the
  client closes, or ``max_cached_results`` newer ready records push it out;
* the backend cannot coordinate (chords, revoke, the scheduler's lease): the app
  needs ``coordination_url`` for those (the core says so when it needs one).

``get`` must see a record published before it was called, though the consumer
receives it a moment later: it first sends a marker through its own reply queue
and waits for it to come back (one round trip), so everything ahead of the
marker has arrived. ``wait`` needs no marker: it is woken by arrivals.

URL forms: ``rpc://[user[:password]@]host[:port][/vhost][?option=value...]``
(``rpcs://`` for TLS), or ``rpc://`` alone, which replies through the app's
broker when that is RabbitMQ (the core hands such a factory the broker URL).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pika
import pika.channel

from petiole.backend import BackendCapabilities, ResultRecord
from petiole.errors import ConfigError, ResultBackendError, ResultTooLarge, TransportError
from petiole.outages import OutageTracker
from petiole.record_codec import decode_record, encode_record
from petiole.urls import mask_url
from petiole_amqp._link import ConnectionLost, Link, PushConsumer, Unroutable, through_outage
from petiole_amqp._options import AmqpTarget, RpcOptions, parse_url

logger = logging.getLogger("petiole_amqp")

_TRANSIENT = pika.DeliveryMode.Transient
_SYNC = "x-petiole-sync"
# Deliveries a reply consumer takes ahead; each is acknowledged as soon as it is filed.
_REPLY_PREFETCH = 1000


class RpcBackend:
    """A :class:`~petiole.backend.ResultBackend` and
    :class:`~petiole.backend.RepliesToSender` on RabbitMQ (see the module docstring)."""

    def __init__(self, target: AmqpTarget[RpcOptions]) -> None:
        self.target = target
        self.options = target.options
        self.capabilities = BackendCapabilities(
            push_wait=True,
            max_result_bytes=self.options.max_message_bytes,
            replies_to_sender=True,
        )
        self._queue = f"petiole.reply.{uuid.uuid4().hex}"
        self._outages = OutageTracker(
            logger,
            f"rpc result backend {target.masked_url}",
            meanwhile=f"retrying with backoff for up to {self.options.reconnect_timeout_s:g} s",
        )
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._records: collections.OrderedDict[str, ResultRecord] = collections.OrderedDict()
        self._awaited: collections.Counter[str] = collections.Counter()
        self._markers: set[str] = set()  # arrived, for a _sync still waiting
        self._awaited_markers: set[str] = set()
        self._link: Link | None = None
        self._consumer: PushConsumer | None = None
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"RpcBackend({self.target.masked_url!r})"

    # -- the sender's side ----------------------------------------------------------------

    def reply_address(self) -> str:
        """Declare this client's reply queue and consume it (once); its name."""
        if self._consumer is not None:
            return self._queue
        # Its own lock: starting may wait through an outage, and the records' lock
        # is the one the I/O thread files replies under.
        with self._start_lock:
            link = self._started_link()
            if self._consumer is None:
                consumer = PushConsumer(
                    link,
                    [self._queue],
                    prefetch_each=_REPLY_PREFETCH,
                    on_message=self._on_reply,
                    on_lost=lambda _channel: None,
                    declare=[(self._queue, False, self._queue_arguments())],
                )
                link.start_consumer(
                    consumer,
                    timeout_s=self.options.reply_timeout_s,
                    retry=lambda attempt: self._through_outage(attempt, link),
                )
                self._consumer = consumer
        return self._queue

    def _queue_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "classic",
            "x-expires": int(self.options.reply_expires_s * 1000),
        }

    def _on_reply(
        self, channel: pika.channel.Channel, method: Any, properties: Any, body: bytes
    ) -> None:
        """On the I/O thread: file the record (or the marker), then acknowledge (the
        waiting thread first: it is what a round trip waits for)."""
        try:
            self._file(properties, body)
        finally:
            channel.basic_ack(method.delivery_tag)

    def _file(self, properties: Any, body: bytes) -> None:
        headers = properties.headers or {}
        marker = headers.get(_SYNC)
        if marker is not None:
            with self._arrived:
                if str(marker) in self._awaited_markers:  # else its _sync gave up
                    self._markers.add(str(marker))
                    self._arrived.notify_all()
            return
        task_id = properties.correlation_id or ""
        try:
            record = decode_record(task_id, body, store="rpc://")
        except ResultBackendError as exc:
            logger.warning("a reply on %s was not a result record: %s", self._queue, exc)
            return
        with self._arrived:
            known = self._records.get(task_id)
            # A late STARTED (a redelivered run) never hides the outcome.
            if known is None or not known.ready or record.ready:
                self._records[task_id] = record
                self._records.move_to_end(task_id)
                self._evict()
            self._arrived.notify_all()

    def _evict(self) -> None:
        excess = len(self._records) - self.options.max_cached_results
        if excess <= 0:
            return
        for task_id in list(self._records):
            if excess <= 0:
                break
            if self._records[task_id].ready and task_id not in self._awaited:
                del self._records[task_id]
                excess -= 1

    # -- the worker's side ------------------------------------------------------------------

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        """Send ``record`` to the client that sent its task; ``ttl_s`` does not apply.
        A record with no ``reply_to`` (its sender asked for none) or whose client is
        gone is dropped: nobody could read it."""
        payload = encode_record(record)
        limit = self.options.max_message_bytes
        if len(payload) > limit:
            raise ResultTooLarge(len(payload), limit, backend="rpc")
        if not record.reply_to:
            logger.debug("result of task %s has no reply_to: nobody to send it to", record.task_id)
            return
        properties = pika.BasicProperties(delivery_mode=_TRANSIENT, correlation_id=record.task_id)
        try:
            self._publish(record.reply_to, payload, properties)
        except Unroutable:
            logger.debug(
                "result of task %s: its client's reply queue %s is gone; dropped",
                record.task_id,
                record.reply_to,
            )

    def _publish(self, queue: str, body: bytes, properties: pika.BasicProperties) -> None:
        link = self._started_link()

        def attempt() -> None:
            link.wait_connected(self.options.reply_timeout_s)
            future = link.publish("", queue, body, properties)
            try:
                future.result(self.options.reply_timeout_s)
            except concurrent.futures.TimeoutError:
                raise ConnectionLost(
                    f"no confirm within {self.options.reply_timeout_s:g} s"
                ) from None

        self._through_outage(attempt, link)

    # -- reading ------------------------------------------------------------------------------

    def get(self, task_id: str) -> ResultRecord | None:
        self._sync()
        with self._lock:
            return self._records.get(task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        self._sync()
        with self._lock:
            return {i: self._records[i] for i in task_ids if i in self._records}

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        ids = list(dict.fromkeys(task_ids))

        def ready() -> dict[str, ResultRecord]:
            found = {i: self._records.get(i) for i in ids}
            return {i: r for i, r in found.items() if r is not None and r.ready}

        with self._arrived:
            self._awaited.update(ids)
            try:
                self._arrived.wait_for(
                    lambda: self._closed.is_set() or len(ready()) == len(ids), timeout_s
                )
                return ready()
            finally:
                self._awaited.subtract(ids)
                self._awaited += collections.Counter()  # drop the zero counts

    def forget(self, task_ids: Sequence[str]) -> None:
        self._sync()
        with self._lock:
            for task_id in task_ids:
                self._records.pop(task_id, None)

    def _sync(self) -> None:
        """Wait until every reply sent before this call has arrived: send a marker
        through the reply queue and wait for it (module docstring). Nothing to wait
        for while this client has no reply queue."""
        if self._consumer is None or self._closed.is_set():
            return
        marker = uuid.uuid4().hex
        properties = pika.BasicProperties(delivery_mode=_TRANSIENT, headers={_SYNC: marker})
        with self._lock:
            self._awaited_markers.add(marker)
        try:
            self._publish(self._queue, b"", properties)
            with self._arrived:
                self._arrived.wait_for(
                    lambda: marker in self._markers or self._closed.is_set(),
                    self.options.reply_timeout_s,
                )
        except (TransportError, ResultBackendError) as exc:
            logger.debug("rpc://: reading without the marker round trip (%s)", exc)
        finally:
            with self._lock:
                self._awaited_markers.discard(marker)
                self._markers.discard(marker)

    # -- plumbing -------------------------------------------------------------------------------

    def _started_link(self) -> Link:
        if self._closed.is_set():
            raise ResultBackendError(f"the rpc:// backend {self.target.masked_url} is closed")
        link = self._link
        if link is None:
            link = self._link = Link(
                self.target.parameters(), name="petiole-amqp-rpc", outages=self._outages
            )
        return link

    def _through_outage(self, attempt: Callable[[], None], link: Link) -> None:
        try:
            through_outage(
                attempt,
                outages=self._outages,
                closed=self._closed,
                ever_connected=link.ever_connected,
                options=self.options,
                component="rpc:// result backend",
                masked_url=self.target.masked_url,
                error=ResultBackendError,
            )
        except Unroutable:
            raise  # the reply queue is gone: the caller decides
        except TransportError as exc:
            raise ResultBackendError(f"rpc:// result backend: {exc}") from exc

    def close(self) -> None:
        """Close the connection; a ``wait`` in another thread returns what it has."""
        with self._arrived:
            if self._closed.is_set():
                return
            self._closed.set()
            self._arrived.notify_all()
            link, self._link = self._link, None
        if link is not None:
            link.close()


_SCHEMES = {"rpc": "amqp", "rpcs": "amqps", "amqp": "amqp", "amqps": "amqps"}


def create_backend(url: str, options: Mapping[str, Any]) -> RpcBackend:
    """The factory registered for ``rpc://`` and ``rpcs://``. Given the broker's
    URL instead (``rpc://`` alone, see :data:`create_backend.address_from_broker`),
    it replies through that RabbitMQ."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _SCHEMES:
        raise ConfigError(
            f"rpc:// alone replies through the app's broker, and the broker "
            f"{mask_url(url)} is not RabbitMQ: name the RabbitMQ to reply through, "
            f"rpc://user:password@host:5672/vhost"
        )
    amqp_url = f"{_SCHEMES[scheme]}://{rest}"
    target = parse_url(amqp_url, options, component="result backend", options_type=RpcOptions)
    return RpcBackend(target)


# Tells the core to hand this factory the broker URL when the backend URL is a
# bare "rpc://" (nothing after the scheme), as Celery's rpc:// means "the broker".
create_backend.address_from_broker = True  # type: ignore[attr-defined]
# Tells the sender, without creating a backend, to ask for a reply address.
create_backend.replies_to_sender = True  # type: ignore[attr-defined]
