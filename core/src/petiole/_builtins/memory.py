"""In-process transport and result backend, for tests and experiments.

Nothing leaves the process and nothing survives it. The semantics match the
SQLite components: leases and delays by wall clock (``time.time()``), delivery
order by priority, then the time a message became due, then publication order;
expired results read as absent.

URLs: ``memory://`` is this process's default broker (or result store);
``memory://name`` is a separate one called ``name``. Every component built from
the same URL in one process shares the same state (an app and a worker in one
test see the same queues), and that state outlives the components: closing one
does not empty the queues. Build :class:`MemoryTransport` or
:class:`MemoryBackend` directly for a private, isolated instance.

Each broker (and each result store) guards all its state with one
``threading.Condition``; a publish or store wakes every waiter at once.

**Push consumption** (:class:`~petiole.transport.Consuming`): a consumer is a
thread that leases due messages as ``reserve`` does and hands each to the
callback, never holding more than ``prefetch`` unsettled ones; the broker's
condition wakes it when one is settled or a message arrives. It is the
in-process model of a push broker, so the core's tests run the worker's push
path; SQLite's tests run its reserve path.

**Broadcast** (:class:`~petiole.transport.Broadcast`) fans out to the
subscriptions of every transport on the same broker. ``broadcast`` only appends
the message to each subscription's inbox; a thread per subscription empties it
and calls the callback, so a slow subscriber never holds up a publisher. An
inbox holds at most ``broadcast_inbox_limit`` messages (10,000 by default):
when a subscriber is that far behind, further messages for it are dropped (at
most once, as a Redis subscriber over its output buffer loses them) and a
warning says how many.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from petiole.backend import BackendCapabilities, ResultBackend, ResultRecord
from petiole.errors import ConfigError, ResultBackendError, TransportError
from petiole.ids import random_hex
from petiole.transport import (
    DeadLetter,
    Delivery,
    ThreadedSubscription,
    Transport,
    TransportCapabilities,
    check_queue_names,
)
from petiole.urls import mask_url

SCHEME = "memory"
DEFAULT_NAME = "default"
BROADCAST_INBOX_LIMIT = 10_000

logger = logging.getLogger(__name__)


def parse_url(url: str, options: Mapping[str, Any], *, component: str) -> str:
    """The store name of a ``memory://`` URL. The memory components take no options.

    Raises :class:`~petiole.errors.ConfigError` for another scheme, a path,
    query parameters, or any option.
    """
    parts = urlsplit(url)
    if parts.scheme != SCHEME or not url.startswith(f"{SCHEME}://"):
        raise ConfigError(f"{component} URL {mask_url(url)!r} is not a {SCHEME}:// URL")
    if parts.path or parts.query or parts.fragment:
        raise ConfigError(
            f"{component} URL {mask_url(url)!r} may only name a store: use {SCHEME}:// or {SCHEME}://name"
        )
    if options:
        raise ConfigError(
            f"the {component} takes no options, got {', '.join(sorted(map(str, options)))} "
            f"(valid: none)"
        )
    return parts.netloc or DEFAULT_NAME


# -- transport -----------------------------------------------------------------


@dataclass(slots=True)
class _Message:
    id: int
    queue: str
    payload: bytes
    message_id: str
    priority: int
    visible_at: float
    delivery_count: int = 0
    receipt: str | None = None
    # Bumped whenever visible_at changes; heap entries with an older version are stale.
    version: int = 0


@dataclass(slots=True)
class _Queue:
    messages: dict[int, _Message] = field(default_factory=dict)
    # Visible messages by delivery order: (-priority, visible_at, id, version).
    ready: list[tuple[int, float, int, int]] = field(default_factory=list)
    # Delayed and leased messages by the time they become visible: (visible_at, id, version).
    hidden: list[tuple[float, int, int]] = field(default_factory=list)
    dead: dict[int, tuple[DeadLetter, _Message]] = field(default_factory=dict)

    def place(self, message: _Message, now: float) -> None:
        """(Re)file ``message`` after its visible_at changed; older heap entries go stale."""
        message.version += 1
        if message.visible_at <= now:
            entry = (-message.priority, message.visible_at, message.id, message.version)
            heapq.heappush(self.ready, entry)
        else:
            heapq.heappush(self.hidden, (message.visible_at, message.id, message.version))

    def take(self, now: float) -> _Message | None:
        """The next due message in delivery order, or None."""
        self._reveal(now)
        while self.ready:
            _, _, message_id, version = heapq.heappop(self.ready)
            message = self.messages.get(message_id)
            if message is not None and message.version == version:
                return message
        return None

    def next_visible_at(self) -> float | None:
        while self.hidden:
            visible_at, message_id, version = self.hidden[0]
            message = self.messages.get(message_id)
            if message is not None and message.version == version:
                return visible_at
            heapq.heappop(self.hidden)
        return None

    def _reveal(self, now: float) -> None:
        while self.hidden and self.hidden[0][0] <= now:
            _, message_id, version = heapq.heappop(self.hidden)
            message = self.messages.get(message_id)
            if message is not None and message.version == version:
                entry = (-message.priority, message.visible_at, message.id, version)
                heapq.heappush(self.ready, entry)


class MemoryBroker:
    """The shared state behind :class:`MemoryTransport` handles: queues, dead
    letters and broadcast subscriptions."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.queues: dict[str, _Queue] = {}
        self.ids = itertools.count(1)
        self.waiting = 0
        """How many reservers are blocked right now (for tests that need one waiting)."""
        # Its own lock: fan-out never waits for a reserve, nor a reserve for fan-out.
        self.broadcast_lock = threading.Lock()
        self.subscribers: dict[str, set[_MemorySubscription]] = {}

    def queue(self, name: str) -> _Queue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = _Queue()
        return queue


class MemoryTransport:
    """A :class:`~petiole.transport.Transport`, :class:`~petiole.transport.Consuming`
    and :class:`~petiole.transport.Broadcast` held in this process's memory."""

    capabilities = TransportCapabilities(
        priorities=True,
        max_delay_s=None,
        broadcast=True,
        max_message_bytes=None,
        leases_expire=True,
    )

    def __init__(
        self,
        broker: MemoryBroker | None = None,
        *,
        broadcast_inbox_limit: int = BROADCAST_INBOX_LIMIT,
    ) -> None:
        self.broker = broker or MemoryBroker()
        self.broadcast_inbox_limit = broadcast_inbox_limit
        self._closed = False
        self._subscriptions: weakref.WeakSet[_MemorySubscription] = weakref.WeakSet()
        self._consumers: weakref.WeakSet[_MemoryConsumer] = weakref.WeakSet()

    def publish(
        self,
        queue: str,
        payload: bytes,
        *,
        message_id: str = "",
        delay_s: float = 0.0,
        priority: int = 0,
    ) -> None:
        """Queue the message; a priority outside 0-9 is clamped into that range."""
        with self._locked():
            now = time.time()
            message = _Message(
                id=next(self.broker.ids),
                queue=queue,
                payload=bytes(payload),
                message_id=message_id,
                priority=min(max(int(priority), 0), 9),
                visible_at=now + max(delay_s, 0.0),
            )
            target = self.broker.queue(queue)
            target.messages[message.id] = message
            target.place(message, now)
            self.broker.condition.notify_all()

    def reserve(
        self, queues: Sequence[str], *, max_messages: int, wait_s: float, lease_s: float
    ) -> list[Delivery]:
        """Lease up to ``max_messages`` due messages, earlier queues first; see the module doc.

        Returns ``[]`` early if this transport is closed while waiting.
        """
        names = check_queue_names(queues, allow_none=True)
        if max_messages <= 0 or not names:
            return []
        deadline = time.monotonic() + max(wait_s, 0.0)
        condition = self.broker.condition
        with self._locked():
            while True:
                deliveries = self._take(names, max_messages, max(lease_s, 0.0))
                remaining = deadline - time.monotonic()
                if deliveries or remaining <= 0 or self._closed:
                    return deliveries
                next_due = self._next_visible_at(names)
                if next_due is not None:
                    remaining = min(remaining, max(next_due - time.time(), 0.0))
                self.broker.waiting += 1
                try:
                    condition.wait(remaining)
                finally:
                    self.broker.waiting -= 1

    def _take(self, names: list[str], max_messages: int, lease_s: float) -> list[Delivery]:
        now = time.time()
        deliveries: list[Delivery] = []
        for name in names:
            queue = self.broker.queues.get(name)
            while queue is not None and len(deliveries) < max_messages:
                message = queue.take(now)
                if message is None:
                    break
                message.receipt = f"{message.id}:{random_hex(8)}"
                message.delivery_count += 1
                message.visible_at = now + lease_s
                queue.place(message, now)
                deliveries.append(
                    Delivery(
                        payload=message.payload,
                        queue=name,
                        receipt=message.receipt,
                        delivery_count=message.delivery_count,
                        message_id=message.message_id,
                        lease_expires_at=message.visible_at,
                    )
                )
        return deliveries

    def _next_visible_at(self, names: list[str]) -> float | None:
        times = (q.next_visible_at() for n in names if (q := self.broker.queues.get(n)) is not None)
        return min((t for t in times if t is not None), default=None)

    def ack(self, delivery: Delivery) -> None:
        """Remove the message if ``delivery`` still holds its lease; otherwise do nothing."""
        with self._locked():
            self._remove(delivery)

    def nack(self, delivery: Delivery, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        """Requeue (visible after ``delay_s``) or drop; a stale receipt does nothing."""
        with self._locked():
            message = self._leased(delivery)
            if message is None:
                return
            if not requeue:
                self._remove(delivery)
                return
            now = time.time()
            message.receipt = None
            message.visible_at = now + max(delay_s, 0.0)
            self.broker.queue(delivery.queue).place(message, now)
            self.broker.condition.notify_all()

    def extend(self, delivery: Delivery, *, lease_s: float) -> bool:
        """True while ``delivery`` still holds the lease (even if it ran out unclaimed)."""
        with self._locked():
            message = self._leased(delivery)
            if message is None:
                return False
            now = time.time()
            message.visible_at = now + max(lease_s, 0.0)
            self.broker.queue(delivery.queue).place(message, now)
            return True

    def dead_letter(self, delivery: Delivery, *, reason: str) -> None:
        """Move the message to its queue's dead letters; a stale receipt does nothing."""
        with self._locked():
            message = self._leased(delivery)
            if message is None:
                return
            queue = self.broker.queue(delivery.queue)
            del queue.messages[message.id]
            letter_id = next(self.broker.ids)
            letter = DeadLetter(
                dead_letter_id=str(letter_id),
                queue=message.queue,
                reason=reason,
                delivery_count=message.delivery_count,
                dead_at=time.time(),
                payload=message.payload,
            )
            queue.dead[letter_id] = (letter, message)
            self.broker.condition.notify_all()  # a push consumer may take another

    def purge(self, queue: str) -> int:
        with self._locked():
            target = self.broker.queues.get(queue)
            if target is None:
                return 0
            count = len(target.messages)
            target.messages.clear()
            target.ready.clear()
            target.hidden.clear()
            return count

    def size(self, queue: str) -> int:
        with self._locked():
            target = self.broker.queues.get(queue)
            return 0 if target is None else len(target.messages)

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        with self._locked():
            target = self.broker.queues.get(queue)
            letters = [] if target is None else [letter for letter, _ in target.dead.values()]
            return letters[: max(limit, 0)]

    def requeue_dead_letters(self, queue: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        """Republish dead letters with delivery count 0 and their priority and message id."""
        with self._locked():
            target = self.broker.queues.get(queue)
            if target is None:
                return 0
            if dead_letter_ids is None:
                chosen = list(target.dead)
            else:
                wanted = set(dead_letter_ids)
                chosen = [i for i in target.dead if str(i) in wanted]
            now = time.time()
            for letter_id in chosen:
                _, old = target.dead.pop(letter_id)
                message = _Message(
                    id=next(self.broker.ids),
                    queue=queue,
                    payload=old.payload,
                    message_id=old.message_id,
                    priority=old.priority,
                    visible_at=now,
                )
                target.messages[message.id] = message
                target.place(message, now)
            if chosen:
                self.broker.condition.notify_all()
            return len(chosen)

    def purge_dead_letters(self, queue: str) -> int:
        with self._locked():
            target = self.broker.queues.get(queue)
            if target is None:
                return 0
            count = len(target.dead)
            target.dead.clear()
            return count

    def consume(
        self,
        queues: Sequence[str],
        *,
        prefetch: int,
        lease_s: float,
        on_delivery: Callable[[Delivery], None],
    ) -> _MemoryConsumer:
        """Push messages of ``queues`` to ``on_delivery`` (see the module docstring)."""
        names = check_queue_names(queues)
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, not {prefetch!r}")
        with self._locked():
            consumer = _MemoryConsumer(self, names, prefetch, max(lease_s, 0.0), on_delivery)
            self._consumers.add(consumer)
        consumer.start()
        return consumer

    def broadcast(self, channel: str, payload: bytes) -> int:
        """Put ``payload`` in the inbox of every subscription of ``channel`` on
        this broker; return how many took it (a full inbox drops it)."""
        self._check_open()
        data = bytes(payload)
        with self.broker.broadcast_lock:
            subscriptions = self.broker.subscribers.get(channel, ())
            return sum(subscription.offer(channel, data) for subscription in subscriptions)

    def subscribe(
        self, channels: Sequence[str], on_message: Callable[[str, bytes], None]
    ) -> _MemorySubscription:
        """Subscribe ``on_message`` to ``channels`` of this broker, from every
        transport on it (see :meth:`petiole.transport.Broadcast.subscribe`)."""
        subscription = _MemorySubscription(
            self.broker, channels, on_message, inbox_limit=self.broadcast_inbox_limit
        )
        with self.broker.broadcast_lock:
            self._check_open()
            for channel in subscription.channels:
                self.broker.subscribers.setdefault(channel, set()).add(subscription)
            self._subscriptions.add(subscription)
        subscription.start()
        return subscription

    def close(self) -> None:
        """Stop this handle and its subscriptions and wake its waiters; the
        broker's messages stay."""
        with self.broker.condition:
            self._closed = True
            self.broker.condition.notify_all()
            consumers = list(self._consumers)
        for consumer in consumers:
            consumer.close()
        with self.broker.broadcast_lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:  # outside the lock: close waits for a callback
            subscription.close()

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("this memory transport is closed")

    def _locked(self) -> threading.Condition:
        self._check_open()
        return self.broker.condition

    def _leased(self, delivery: Delivery) -> _Message | None:
        """The message ``delivery`` leased, if its receipt is still the current one."""
        queue = self.broker.queues.get(delivery.queue)
        message_id, _, _ = delivery.receipt.partition(":")
        if queue is None or not (message_id.isascii() and message_id.isdigit()):
            return None
        message = queue.messages.get(int(message_id))
        if message is None or message.receipt != delivery.receipt:
            return None
        return message

    def _remove(self, delivery: Delivery) -> None:
        message = self._leased(delivery)
        if message is not None:
            del self.broker.queues[delivery.queue].messages[message.id]
            self.broker.condition.notify_all()  # a push consumer may take another


class _MemoryConsumer:
    """One push consumer: a thread leasing due messages while fewer than
    ``prefetch`` of its deliveries are unsettled (see the module docstring)."""

    def __init__(
        self,
        transport: MemoryTransport,
        queues: list[str],
        prefetch: int,
        lease_s: float,
        on_delivery: Callable[[Delivery], None],
    ) -> None:
        self.transport = transport
        self.queues = queues
        self.prefetch = prefetch
        self.lease_s = lease_s
        self.on_delivery = on_delivery
        self._out: dict[str, Delivery] = {}  # receipt -> delivery handed out, maybe unsettled
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"petiole-memory-consumer-{','.join(queues)}", daemon=True
        )

    def __repr__(self) -> str:
        return f"<memory consumer of {self.queues} prefetch={self.prefetch}>"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self.transport.broker.condition:
            self._closed = True
            self.transport.broker.condition.notify_all()
        if self._thread is not threading.current_thread() and self._thread.is_alive():
            self._thread.join()

    def _unsettled(self) -> int:
        """Deliveries still holding their lease (lock held); settled ones and those whose
        lease ran out drop out."""
        now = time.time()
        for receipt, delivery in list(self._out.items()):
            message = self.transport._leased(delivery)
            if message is None or message.visible_at <= now:
                del self._out[receipt]
        return len(self._out)

    def _run(self) -> None:
        transport = self.transport
        condition = transport.broker.condition
        while True:
            with condition:
                while True:
                    if self._closed or transport._closed:
                        return
                    free = self.prefetch - self._unsettled()
                    deliveries = transport._take(self.queues, free, self.lease_s) if free else []
                    if deliveries:
                        break
                    # Woken by a publish, a settle or close; a message or lease coming
                    # due wakes nobody, so wait no longer than the next one.
                    next_due = transport._next_visible_at(self.queues)
                    timeout = 1.0 if next_due is None else max(next_due - time.time(), 0.0)
                    transport.broker.waiting += 1
                    try:
                        condition.wait(min(timeout, 1.0))
                    finally:
                        transport.broker.waiting -= 1
                for delivery in deliveries:
                    self._out[delivery.receipt] = delivery
            for delivery in deliveries:
                self._deliver(delivery)

    def _deliver(self, delivery: Delivery) -> None:
        if self._closed:  # close() promises no callback after it returned
            self._return(delivery)
            return
        try:
            self.on_delivery(delivery)
        except Exception:
            logger.exception(
                "the delivery callback %r failed on a message of queue %r; returning it",
                self.on_delivery,
                delivery.queue,
            )
            self._return(delivery)

    def _return(self, delivery: Delivery) -> None:
        with contextlib.suppress(TransportError):  # closed: it comes back when its lease ends
            self.transport.nack(delivery, requeue=True)


class _MemorySubscription(ThreadedSubscription):
    """One subscriber's inbox, emptied by its own thread (see the module docstring)."""

    def __init__(
        self,
        broker: MemoryBroker,
        channels: Sequence[str],
        on_message: Callable[[str, bytes], None],
        *,
        inbox_limit: int,
    ) -> None:
        super().__init__(channels, on_message, thread_name="petiole-memory-broadcast")
        self._broker = broker
        self._inbox_limit = max(inbox_limit, 1)
        self._condition = threading.Condition()
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._dropping = 0  # messages dropped since the inbox was last full
        self.dropped = 0
        """Messages dropped because the inbox was full, in all."""

    def offer(self, channel: str, payload: bytes) -> bool:
        """Queue a message for the callback; False when the inbox is full (dropped)."""
        with self._condition:
            if len(self._inbox) < self._inbox_limit:
                self._inbox.append((channel, payload))
                self._condition.notify()
                return True
            self._dropping += 1
            self.dropped += 1
            first = self._dropping == 1
        if first:
            logger.warning(
                "memory broadcast subscription to %s is %d messages behind: dropping "
                "new messages for it until it catches up",
                list(self.channels),
                self._inbox_limit,
            )
        return False

    def fetch(self) -> list[tuple[str, bytes]]:
        with self._condition:
            self._condition.wait_for(lambda: self._inbox or self.closed)
            batch = list(self._inbox)
            self._inbox.clear()
            dropped, self._dropping = self._dropping, 0
        if dropped:
            logger.warning(
                "memory broadcast subscription to %s caught up; it missed %d messages",
                list(self.channels),
                dropped,
            )
        return batch

    def wake(self) -> None:
        with self._condition:
            self._condition.notify_all()

    def release(self) -> None:
        with self._broker.broadcast_lock:
            for channel in self.channels:
                subscribers = self._broker.subscribers.get(channel)
                if subscribers is not None:
                    subscribers.discard(self)
                    if not subscribers:
                        del self._broker.subscribers[channel]


# -- result backend --------------------------------------------------------------


@dataclass(slots=True)
class _Expiring:
    value: Any
    expires_at: float | None

    def alive(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


class ResultStore:
    """The shared state behind :class:`MemoryBackend` handles."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.records: dict[str, _Expiring] = {}
        self.sets: dict[str, _Expiring] = {}
        self.counters: dict[str, _Expiring] = {}
        self.claims: dict[str, _Expiring] = {}  # claims and marks
        self.leases: dict[str, _Expiring] = {}  # expires_at by time.monotonic()
        self.next_sweep_at = 0.0  # monotonic
        self.waiting = 0
        """How many ``wait`` calls are blocked right now (for tests that need one waiting)."""


class MemoryBackend:
    """A :class:`~petiole.backend.ResultBackend` and :class:`~petiole.backend.Coordination`
    held in this process's memory.

    ``wait`` is woken by ``store`` itself (``push_wait``). Expired entries read
    as absent and are dropped when touched, and all of them by a sweep that a
    ``store`` runs at most once a minute.
    """

    capabilities = BackendCapabilities(push_wait=True, max_result_bytes=None)
    _SWEEP_INTERVAL_S = 60.0

    def __init__(self, store: ResultStore | None = None) -> None:
        self.results = store or ResultStore()
        self._closed = False

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        """Keep a copy of ``record`` (its ``meta`` must be JSON-safe, as in a real store)."""
        try:
            meta = json.loads(json.dumps(dict(record.meta), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ResultBackendError(
                f"the meta of task {record.task_id!r} is not JSON-safe ({exc}); "
                f"meta may hold only JSON types"
            ) from exc
        copy = ResultRecord(
            task_id=record.task_id,
            state=record.state,
            payload=bytes(record.payload),
            content_type=record.content_type,
            traceback=record.traceback,
            date_done=record.date_done,
            meta=meta,
        )
        with self._locked() as store:
            now = time.time()
            store.records[record.task_id] = _Expiring(copy, _expires_at(now, ttl_s))
            if time.monotonic() >= store.next_sweep_at:
                store.next_sweep_at = time.monotonic() + self._SWEEP_INTERVAL_S
                for table in (store.records, store.sets, store.counters, store.claims):
                    for key in [k for k, v in table.items() if not v.alive(now)]:
                        del table[key]
            self.results.condition.notify_all()

    def get(self, task_id: str) -> ResultRecord | None:
        return self.get_many([task_id]).get(task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        with self._locked():
            return self._found(task_ids, time.time())

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        """Block until every id has a ready record or ``timeout_s`` passes; woken by ``store``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        wanted = list(dict.fromkeys(task_ids))
        with self._locked() as store:
            while True:
                ready = {k: r for k, r in self._found(wanted, time.time()).items() if r.ready}
                if len(ready) == len(wanted) or self._closed:
                    return ready
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return ready
                store.waiting += 1
                try:
                    store.condition.wait(remaining)
                finally:
                    store.waiting -= 1

    def forget(self, task_ids: Sequence[str]) -> None:
        with self._locked() as store:
            for task_id in task_ids:
                store.records.pop(task_id, None)

    def set_add(self, key: str, member: str, *, ttl_s: float | None) -> int:
        """Add ``member``; the set's expiry moves to ``ttl_s`` from now. Returns the size."""
        with self._locked() as store:
            now = time.time()
            entry = store.sets.get(key)
            members: set[str] = entry.value if entry is not None and entry.alive(now) else set()
            members.add(member)
            store.sets[key] = _Expiring(members, _expires_at(now, ttl_s))
            return len(members)

    def incr(self, key: str, amount: int = 1, *, ttl_s: float | None) -> int:
        """Add ``amount``; the counter's expiry moves to ``ttl_s`` from now. Returns the value."""
        with self._locked() as store:
            now = time.time()
            entry = store.counters.get(key)
            value = int(entry.value) if entry is not None and entry.alive(now) else 0
            value += amount
            store.counters[key] = _Expiring(value, _expires_at(now, ttl_s))
            return value

    def claim(self, key: str, owner: str, *, ttl_s: float | None) -> str:
        """The current owner of ``key``, made ``owner`` first if there is none."""
        with self._locked() as store:
            now = time.time()
            entry = store.claims.get(key)
            if entry is not None and entry.alive(now):
                return str(entry.value)
            store.claims[key] = _Expiring(owner, _expires_at(now, ttl_s))
            return owner

    def put_mark(self, key: str, value: str, *, ttl_s: float | None) -> None:
        with self._locked() as store:
            store.claims[key] = _Expiring(value, _expires_at(time.time(), ttl_s))

    def get_marks(self, keys: Sequence[str]) -> dict[str, str]:
        with self._locked() as store:
            now = time.time()
            found = {key: store.claims.get(key) for key in keys}
            return {k: str(e.value) for k, e in found.items() if e is not None and e.alive(now)}

    def delete_keys(self, keys: Sequence[str]) -> None:
        with self._locked() as store:
            for key in keys:
                store.sets.pop(key, None)
                store.counters.pop(key, None)
                store.claims.pop(key, None)

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """``owner``'s for ``ttl_s`` (by this process's monotonic clock) unless another's."""
        with self._locked() as store:
            now = time.monotonic()
            entry = store.leases.get(name)
            if entry is not None and entry.alive(now) and entry.value != owner:
                return False
            store.leases[name] = _Expiring(owner, now + ttl_s)
            return True

    def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        with self._locked() as store:
            now = time.monotonic()
            entry = store.leases.get(name)
            if entry is None or not entry.alive(now) or entry.value != owner:
                return False
            entry.expires_at = now + ttl_s
            return True

    def release_lease(self, name: str, owner: str) -> bool:
        with self._locked() as store:
            entry = store.leases.get(name)
            if entry is None or not entry.alive(time.monotonic()) or entry.value != owner:
                return False
            del store.leases[name]
            return True

    def close(self) -> None:
        """Stop this handle and wake its waiters; the stored results stay."""
        with self.results.condition:
            self._closed = True
            self.results.condition.notify_all()

    def _found(self, task_ids: Sequence[str], now: float) -> dict[str, ResultRecord]:
        found: dict[str, ResultRecord] = {}
        for task_id in task_ids:
            entry = self.results.records.get(task_id)
            if entry is None:
                continue
            if entry.alive(now):
                found[task_id] = entry.value
            else:
                del self.results.records[task_id]
        return found

    def _locked(self) -> _StoreLock:
        if self._closed:
            raise ResultBackendError("this memory result backend is closed")
        return _StoreLock(self.results)


class _StoreLock:
    """``with`` holds the store's condition and yields the store."""

    def __init__(self, store: ResultStore) -> None:
        self._store = store

    def __enter__(self) -> ResultStore:
        self._store.condition.acquire()
        return self._store

    def __exit__(self, *exc: object) -> None:
        self._store.condition.release()


def _expires_at(now: float, ttl_s: float | None) -> float | None:
    return None if ttl_s is None else now + ttl_s


# -- factories -------------------------------------------------------------------

_brokers: dict[str, MemoryBroker] = {}
_result_stores: dict[str, ResultStore] = {}
_registry_lock = threading.Lock()


def create_transport(url: str, options: Mapping[str, Any]) -> Transport:
    """A :class:`MemoryTransport` on the process-wide broker named by ``url``."""
    name = parse_url(url, options, component="memory transport")
    with _registry_lock:
        broker = _brokers.setdefault(name, MemoryBroker())
    return MemoryTransport(broker)


def create_backend(url: str, options: Mapping[str, Any]) -> ResultBackend:
    """A :class:`MemoryBackend` on the process-wide result store named by ``url``."""
    name = parse_url(url, options, component="memory result backend")
    with _registry_lock:
        store = _result_stores.setdefault(name, ResultStore())
    return MemoryBackend(store)
