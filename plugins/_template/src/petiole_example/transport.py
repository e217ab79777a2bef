"""The example transport: queues in the example store (see _store.py).

Each method's contract is in :class:`petiole.plugin_api.Transport`; the
conformance suite (tests/test_conformance.py) checks them all. How it maps onto
the store:

* A message is **due** once its ``visible_at`` (wall clock) has passed. A
  delay sets it in the future; a lease sets it to the lease's end, with a new
  ``receipt``, so an unacknowledged message becomes due again by itself when
  its lease runs out, and an operation with an older receipt finds the receipt
  changed and does nothing.
* Due messages are reserved in the order they became due, then in the order
  they were published; across queues, in the order the caller gives.
  Priorities are not supported (declared in ``capabilities``: the suite skips
  that test, by name).
* ``reserve`` waits on the store's condition, which every publish, nack and
  requeue wakes, for at most ``wait_s`` or until the next delayed message is due.

A real transport does the same steps on its server (a script, a transaction)
and translates its client library's errors into :class:`TransportError` at this
edge, as :meth:`ExampleTransport._store` does.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from petiole.plugin_api import (
    DeadLetter,
    Delivery,
    MessageTooLarge,
    Transport,
    TransportCapabilities,
    TransportError,
    check_queue_names,
)
from petiole_example._options import TransportOptions, parse_url
from petiole_example._store import Buried, Message, Store, StoreError, connect

# import example_client  -- a real plugin imports its client library at module top,
# so a missing install fails loudly when the component is first used.

COMPONENT = "example transport"


class ExampleTransport:
    """A :class:`~petiole.plugin_api.Transport` on the example store (see the module doc)."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        target = parse_url(url, options, TransportOptions, component=COMPONENT)
        self.options = target.options
        self.masked_url = target.masked_url
        # Declare honestly: the conformance suite runs what each capability implies
        # and skips, by name, what a capability declared missing rules out.
        self.capabilities = TransportCapabilities(
            priorities=False,
            max_delay_s=None,
            broadcast=False,
            max_message_bytes=target.options.max_message_bytes,
            leases_expire=True,
            fifo=True,
            queue_preference=True,
        )
        self._conn = connect(target.name)

    def __repr__(self) -> str:
        return f"ExampleTransport({self.masked_url!r})"

    def publish(
        self,
        queue: str,
        payload: bytes,
        *,
        message_id: str = "",
        delay_s: float = 0.0,
        priority: int = 0,
    ) -> None:
        """Append the message, due after ``delay_s``; ``priority`` is ignored (not supported)."""
        limit = self.options.max_message_bytes
        if len(payload) > limit:
            raise MessageTooLarge(len(payload), limit, COMPONENT)
        with self._store() as store:
            message = Message(
                seq=next(store.seq),
                payload=bytes(payload),
                message_id=message_id,
                visible_at=time.time() + max(delay_s, 0.0),
            )
            store.queues.setdefault(queue, {})[message.seq] = message
            store.changed.notify_all()

    def reserve(
        self, queues: Sequence[str], *, max_messages: int, wait_s: float, lease_s: float
    ) -> list[Delivery]:
        """Lease up to ``max_messages`` due messages; returns ``[]`` early when closed."""
        names = check_queue_names(queues, allow_none=True)
        if max_messages <= 0 or not names:
            return []
        deadline = time.monotonic() + max(wait_s, 0.0)
        with self._store() as store:
            while not self._conn.closed:  # close() wakes the wait below
                now = time.time()
                deliveries = _lease(store, names, max_messages, now, now + max(lease_s, 0.0))
                remaining = deadline - time.monotonic()
                if deliveries or remaining <= 0:
                    return deliveries
                next_due = _next_due(store, names)
                if next_due is not None:
                    remaining = min(remaining, next_due - now)
                store.changed.wait(remaining)
        return []

    def ack(self, delivery: Delivery) -> None:
        with self._store() as store:
            _remove(store, delivery)

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """The optional batch acknowledgement (:class:`~petiole.plugin_api.AcksInBatches`):
        one transaction for all, each checked against its own lease."""
        with self._store() as store:
            for delivery in deliveries:
                _remove(store, delivery)

    def nack(self, delivery: Delivery, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        with self._store() as store:
            message = _leased(store, delivery)
            if message is None:
                return
            if not requeue:
                del store.queues[delivery.queue][message.seq]
                return
            message.receipt = None
            message.visible_at = time.time() + max(delay_s, 0.0)
            store.changed.notify_all()

    def extend(self, delivery: Delivery, *, lease_s: float) -> bool:
        with self._store() as store:
            message = _leased(store, delivery)
            if message is None:
                return False
            message.visible_at = time.time() + max(lease_s, 0.0)
            return True

    def dead_letter(self, delivery: Delivery, *, reason: str) -> None:
        with self._store() as store:
            message = _leased(store, delivery)
            if message is None:
                return
            del store.queues[delivery.queue][message.seq]
            buried = Buried(message, reason, time.time())
            store.dead.setdefault(delivery.queue, {})[next(store.seq)] = buried

    def purge(self, queue: str) -> int:
        with self._store() as store:
            return len(store.queues.pop(queue, {}))

    def size(self, queue: str) -> int:
        with self._store() as store:
            return len(store.queues.get(queue, {}))

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        with self._store() as store:
            buried = list(store.dead.get(queue, {}).items())[: max(limit, 0)]
            return [_dead_letter(queue, letter_id, b) for letter_id, b in buried]

    def requeue_dead_letters(self, queue: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        with self._store() as store:
            buried = store.dead.get(queue, {})
            wanted = None if dead_letter_ids is None else set(dead_letter_ids)
            chosen = [i for i in buried if wanted is None or str(i) in wanted]
            now = time.time()
            for letter_id in chosen:
                old = buried.pop(letter_id).message
                message = Message(next(store.seq), old.payload, old.message_id, visible_at=now)
                store.queues.setdefault(queue, {})[message.seq] = message
            if chosen:
                store.changed.notify_all()
            return len(chosen)

    def purge_dead_letters(self, queue: str) -> int:
        with self._store() as store:
            return len(store.dead.pop(queue, {}))

    def close(self) -> None:
        """Close the connection and wake this transport's waiting ``reserve``. Idempotent."""
        self._conn.close()

    @contextmanager
    def _store(self) -> Iterator[Store]:
        # The edge: the client library's errors become Petiole's, with the URL masked.
        try:
            with self._conn.transaction() as store:
                yield store
        except StoreError as exc:
            raise TransportError(f"{COMPONENT} {self.masked_url}: {exc}") from exc


def _lease(
    store: Store, names: list[str], max_messages: int, now: float, lease_end: float
) -> list[Delivery]:
    deliveries: list[Delivery] = []
    for name in names:
        queue = store.queues.get(name, {})
        due = sorted(
            (m for m in queue.values() if m.visible_at <= now),
            key=lambda m: (m.visible_at, m.seq),
        )
        for message in due[: max_messages - len(deliveries)]:
            message.delivery_count += 1
            message.receipt = f"{message.seq}:{secrets.token_hex(8)}"
            message.visible_at = lease_end
            deliveries.append(
                Delivery(
                    payload=message.payload,
                    queue=name,
                    receipt=message.receipt,
                    delivery_count=message.delivery_count,
                    message_id=message.message_id,
                    lease_expires_at=lease_end,
                )
            )
        if len(deliveries) >= max_messages:
            break
    return deliveries


def _next_due(store: Store, names: list[str]) -> float | None:
    """When the next message of ``names`` that is not due now becomes due."""
    times = [m.visible_at for n in names for m in store.queues.get(n, {}).values()]
    return min(times, default=None)


def _leased(store: Store, delivery: Delivery) -> Message | None:
    """The message ``delivery`` leased, while its receipt is still the current one."""
    seq, _, _ = delivery.receipt.partition(":")
    if not (seq.isascii() and seq.isdigit()):
        return None
    message = store.queues.get(delivery.queue, {}).get(int(seq))
    if message is None or message.receipt != delivery.receipt:
        return None
    return message


def _remove(store: Store, delivery: Delivery) -> None:
    message = _leased(store, delivery)
    if message is not None:
        del store.queues[delivery.queue][message.seq]


def _dead_letter(queue: str, letter_id: int, buried: Buried) -> DeadLetter:
    return DeadLetter(
        dead_letter_id=str(letter_id),
        queue=queue,
        reason=buried.reason,
        delivery_count=buried.message.delivery_count,
        dead_at=buried.dead_at,
        payload=buried.message.payload,
    )


def create_transport(url: str, options: Mapping[str, Any]) -> Transport:
    """The factory ``petiole_transports`` registers for ``example://``."""
    return ExampleTransport(url, options)
