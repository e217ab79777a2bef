"""The Redis transport (broker).

Each queue is a handful of keys (see :mod:`petiole_redis._keys`): a list of
message ids per priority, a sorted set of delayed ids by due time, a sorted
set of leased ids by lease end, and two hashes holding each message's payload
and its metadata (delivery count, priority, message id). Every step that
touches more than one key is a Lua script in ``lua/`` (publish, reserve, ack,
nack, extend, dead-letter, requeue), so it is atomic on the server.

``reserve`` is one script: it first moves the queues' expired leases back to
their lists (so *any* live worker recovers a dead worker's messages, at the
lease's end) and their due delayed messages in, then pops up to
``max_messages`` ids, highest priority first, and leases them. Nothing is ever
held only in a worker's memory: a leased message stays in Redis until it is
acknowledged.

**Receipts.** A receipt is ``<id>:<delivery count>``. Each reservation
increments the count, so it names exactly one lease; ``ack``, ``nack``,
``extend`` and ``dead_letter`` act only if the message is still leased *and*
its count matches. A stale receipt is harmless.

**Waiting.** ``reserve.lua`` also returns the earliest time a delayed message
or a lease of those queues comes due, and whether it *drained* them (left every
ready list empty). When it leased nothing, the caller blocks in ``BLPOP`` on the
queues' wake lists until that time (at most ``_max_block_s``, or the end of its
wait); after a reserve that drained the queues, the next reserve of this thread
blocks at once, without asking again, so an idle worker costs one ``BLPOP`` per
wait. A publish that makes a ready list non-empty, ``nack`` and
``requeue_dead_letters`` push a token there, and a reserve that leaves ids behind
pushes one too: a waiting worker wakes within a round trip, with no polling, and
still wakes for a delay or lease that comes due. A token pushed between the
script and the ``BLPOP`` stays in the list, so no wake-up is lost; the list holds
at most one token, and a publish to a list already holding ids pushes none, so a
backlog costs nothing extra.

**Corrupt entries.** Redis keeps the writes a script made before an error, so
every script reads and checks what it needs before its first write (see
``lua/lib.lua``). An entry ``reserve`` cannot deliver (a meta that is not
``<count>|<priority>|<message_id>``, a meta or payload missing) is moved to the
queue's dead-letter store with a reason naming what was corrupt, and the
reserve goes on with the good messages; each such move is logged at ERROR with
the ids.

**Orphans.** A message stored in the msgs hash whose id is in no ready list,
delayed set or leased set would never be delivered. ``reserve`` runs a
periodic, bounded check that puts such messages back (see
:mod:`petiole_redis._repair`); :meth:`RedisTransport.requeue_orphans` checks a
whole queue at once.

**Outages.** See :mod:`petiole_redis._client`: calls ride out a restart of the
server; a waiting ``reserve`` returns ``[]`` at the end of its wait while the
server is down. A server that came back without its data is noticed and
logged there; :attr:`RedisTransport.data_generation` grows by one each time,
so a failed lease extension after it can be told from a stalled worker.

**Broadcast.** :class:`RedisTransport` implements
:class:`petiole.transport.Broadcast` over Redis pub/sub (channel
``<prefix>:broadcast:<channel>``): ``broadcast`` is one ``PUBLISH`` and returns
the server's count of subscribers reached; each subscription has a connection
and a thread of its own (:class:`petiole_redis._pubsub.Subscription`). At most
once: a subscriber that is disconnected (an outage, or the server cutting off
one past its ``client-output-buffer-limit pubsub``) misses what is sent
meanwhile, then reconnects and subscribes again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any, TypeVar

import redis
from redis.exceptions import NoScriptError

from petiole.errors import MessageTooLarge, TransportError
from petiole.transport import (
    DeadLetter,
    Delivery,
    Transport,
    TransportCapabilities,
    check_queue_names,
)
from petiole_redis._client import Closed, Connector, FastClient, Script, StillDown, command
from petiole_redis._keys import PRIORITIES, Keys
from petiole_redis._options import parse_url
from petiole_redis._pubsub import Subscription
from petiole_redis._repair import OrphanCheck, log_buried, text

COMPONENT = "redis broker"

logger = logging.getLogger("petiole_redis")

T = TypeVar("T")

# The most expired leases and due delayed messages one reserve moves per queue,
# so a huge backlog never makes one script call long.
_SWEEP_LIMIT = 1000
# Dead letters requeued per script call when requeueing a whole queue.
_REQUEUE_BATCH = 1000
# A batch() block sends what it holds once it holds this many messages or bytes
# of payload: a loop of a million publishes keeps at most one round's worth in
# memory, and one round stays well under the server's query buffer limit (1 GB).
_BATCH_MAX_MESSAGES = 500
_BATCH_MAX_BYTES = 4 * 1024 * 1024
_PUBLISH = Script("publish")
_RESERVE = Script("reserve", library=True)
_ACK = Script("ack")
_ACK_MANY = Script("ack_many")
# Receipts per ack_many.lua call: bounds the arguments of one command in the script.
_ACK_BATCH = 500
_NACK = Script("nack", library=True)
_EXTEND = Script("extend")
_DEAD_LETTER = Script("dead_letter", library=True)
_DEAD_LIST = Script("dead_list")
_REQUEUE_DEAD = Script("requeue_dead")


@dataclass(slots=True)
class _Batch:
    """What one thread's open :meth:`RedisTransport.batch` holds."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)  # not sent yet
    held_bytes: int = 0  # their payloads' size
    stored: int = 0  # sent in earlier rounds of this block, and stored


class RedisTransport:
    """A :class:`~petiole.transport.Transport` on Redis (see the module docstring)."""

    capabilities = TransportCapabilities(
        priorities=True,
        max_delay_s=None,
        broadcast=True,
        max_message_bytes=None,  # the server's proto-max-bulk-len (512 MB by default)
        leases_expire=True,
        min_lease_s=0.0,
        fifo=True,
        queue_preference=True,
    )

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        target = parse_url(url, options, component=COMPONENT)
        self.options = target.options
        self.keys = Keys(target.options.key_prefix)
        self._conn = Connector(target, component=COMPONENT, error_type=TransportError)
        self._conn.connect()
        # BLPOP must return before the socket's read timeout would cut it off.
        self._max_block_s = min(5.0, target.options.socket_timeout_s / 2)
        self._reserve_keys = lru_cache(maxsize=256)(self._build_reserve_keys)
        self._orphans = OrphanCheck(
            self._conn, self.keys, interval_s=target.options.orphan_check_interval_s
        )
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._subscriptions_lock = threading.Lock()
        self._batches = threading.local()  # .open: this thread's open batch() block
        # .until: {queues: monotonic time} for this thread's reserves whose last
        # call drained those queues: the next one blocks first (see reserve).
        self._idle = threading.local()

    @property
    def data_generation(self) -> int:
        """0, plus one each time the server was found to have lost its data (see
        :mod:`petiole_redis._client`). A lease taken in an earlier generation
        is gone with the data: its extension fails, and the worker did not stall."""
        return self._conn.data_generation

    @property
    def data_lost_at(self) -> float | None:
        """When (``time.time()``) the server was last found to have lost its data; None if never."""
        return self._conn.data_lost_at

    def __repr__(self) -> str:
        return f"RedisTransport({self._conn.target.masked_url!r})"

    # -- publishing ----------------------------------------------------------------

    def publish(
        self,
        queue: str,
        payload: bytes,
        *,
        message_id: str = "",
        delay_s: float = 0.0,
        priority: int = 0,
    ) -> None:
        """Store the message (one script call); durable per the server's AOF
        settings when this returns. A priority outside 0-9 is clamped into it.
        Inside :meth:`batch`, the message is only queued; see there."""
        self._check_size(payload)
        keys, argv = self._publish_args(queue, payload, message_id, delay_s, priority)
        pending: _Batch | None = getattr(self._batches, "open", None)
        if pending is not None:
            pending.calls.append(_PUBLISH.args(keys, argv))
            pending.held_bytes += len(payload)
            if len(pending.calls) >= _BATCH_MAX_MESSAGES or pending.held_bytes >= _BATCH_MAX_BYTES:
                self._send_batch(pending)
            return
        self._call_fast(f"publish to queue {queue!r}", lambda c: _PUBLISH(c, keys, argv))

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Publishes of this thread in the block are pipelined: sent in rounds of
        up to 500 messages (or 4 MB of payloads), one round trip each, and the rest
        at the block's end (:class:`~petiole.transport.PublishesInBatches`).

        When the block ends every one of them is stored, durable per the server's
        AOF settings, or a :class:`~petiole.errors.TransportError` says how many
        of the block's messages were stored and how many may not be. Each message is
        its own script call, stored whole or not at all, and carries a random id the
        script refuses twice, so a round resent after a lost reply (an outage) stores
        nothing twice. A block inside a block joins it; a block left by an exception
        still sends what it queued (as publishes outside a block would have been)."""
        if getattr(self._batches, "open", None) is not None:
            yield  # a batch in a batch (a group of groups): the outer block sends all
            return
        pending = _Batch()
        self._batches.open = pending
        try:
            yield
        finally:
            self._batches.open = None
            self._send_batch(pending)

    def _send_batch(self, pending: _Batch) -> None:
        """Send the calls ``pending`` holds in one pipelined round trip (retried
        through an outage as every call is); count them as stored once it returns."""
        calls = pending.calls
        if not calls:
            return
        pending.calls, pending.held_bytes = [], 0
        try:
            self._call_fast(
                f"publish {len(calls)} messages", lambda c: _run_scripts(c, calls, _PUBLISH)
            )
        except TransportError as exc:
            raise TransportError(
                f"{exc} — of the {pending.stored + len(calls)} messages published in this "
                f"batch, {pending.stored} are stored; the last {len(calls)} may not be"
            ) from exc
        pending.stored += len(calls)

    def publish_many(
        self,
        queue: str,
        payloads: Iterable[bytes],
        *,
        message_ids: Sequence[str] | None = None,
        delay_s: float = 0.0,
        priority: int = 0,
    ) -> int:
        """Publish several messages to ``queue`` in one pipelined round trip.

        Each is stored by its own script call (a message is never half stored);
        all are stored when this returns. Returns how many were published.
        """
        batch = list(payloads)
        ids = list(message_ids) if message_ids is not None else [""] * len(batch)
        if len(ids) != len(batch):
            raise ValueError("message_ids must have one id per payload")
        for payload in batch:
            self._check_size(payload)
        calls = [
            _PUBLISH.args(*self._publish_args(queue, payload, mid, delay_s, priority))
            for payload, mid in zip(batch, ids, strict=True)
        ]
        if calls:
            self._call_fast(
                f"publish {len(calls)} messages to queue {queue!r}",
                lambda c: _run_scripts(c, calls, _PUBLISH),
            )
        return len(calls)

    def _publish_args(
        self, queue: str, payload: bytes, message_id: str, delay_s: float, priority: int
    ) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        """The keys and arguments of publish.lua for one message."""
        q = self.keys.queue(queue)
        prio = min(max(int(priority), 0), PRIORITIES - 1)
        keys = (q.ready[prio], q.delayed, q.msgs, q.meta, q.wake)
        argv = (os.urandom(12).hex(), payload, f"0|{prio}|{message_id}", _ms(delay_s))
        return keys, argv

    def _check_size(self, payload: bytes) -> None:
        limit = self.capabilities.max_message_bytes
        if limit is not None and len(payload) > limit:
            raise MessageTooLarge(len(payload), limit, "redis")

    # -- reserving -------------------------------------------------------------------

    def reserve(
        self, queues: Sequence[str], *, max_messages: int, wait_s: float, lease_s: float
    ) -> list[Delivery]:
        """Lease up to ``max_messages`` due messages, earlier queues first, then
        higher priority, then oldest. Blocks (see "Waiting" in the module
        docstring) for up to ``wait_s``; returns ``[]`` at once if the transport
        is closed meanwhile, and ``[]`` after ``wait_s`` while the server is down."""
        names = tuple(check_queue_names(queues, allow_none=True))
        if max_messages <= 0 or not names:
            return []
        keys, wake_keys = self._reserve_keys(names)
        argv = (int(max_messages), _ms(lease_s), _SWEEP_LIMIT)
        deadline = time.monotonic() + max(wait_s, 0.0)
        self._orphans.run_due_step(names, until=deadline)
        idle: dict[tuple[str, ...], float] = self._idle.__dict__.setdefault("until", {})
        # Set when the last reserve of these queues drained them: until a wake token
        # or their next due time the script would find nothing, so block first.
        quiet_until = idle.pop(names, None)
        try:
            while True:
                if quiet_until is not None and wait_s > 0:
                    woken = self._block(wake_keys, min(deadline, quiet_until), deadline)
                    now = time.monotonic()
                    if not woken and now < quiet_until:
                        if now >= deadline:
                            idle[names] = quiet_until
                            return []
                        continue  # a slice of the wait ended; still nothing to find
                reply = self._conn.call_fast(
                    "reserve", lambda c: _RESERVE(c, keys, argv), until=deadline
                )
                now_ms, next_due_ms = int(reply[0]), int(reply[1])
                if reply[2]:
                    self._report_buried(names, reply[2])
                quiet_until = None
                if int(reply[3]):
                    # Capped: a lease another worker takes later, and that worker's
                    # death, are seen only by a script; an idle worker runs one
                    # every _max_block_s (5 s), as before this hint.
                    quiet_s = self._max_block_s
                    if next_due_ms >= 0:
                        quiet_s = min(quiet_s, max((next_due_ms - now_ms) / 1000, 0.0))
                    quiet_until = time.monotonic() + quiet_s
                if len(reply) > 4 or time.monotonic() >= deadline:
                    if quiet_until is not None:
                        idle[names] = quiet_until
                    return _deliveries(reply, names, now_ms + argv[1])
                # Not drained and nothing leased: the script stopped at its limit of
                # corrupt entries moved aside; the next call goes on with the rest.
        except (Closed, StillDown):
            return []

    def _block(self, wake_keys: list[str], until: float, deadline: float) -> bool:
        """Wait in ``BLPOP`` on the wake lists until a token comes or ``until``
        (monotonic; at most ``_max_block_s``); True if a token came."""
        block_s = min(max(until - time.monotonic(), 0.001), self._max_block_s)
        blpop = ("BLPOP", *wake_keys, f"{block_s:.3f}")
        reply = self._conn.call_fast("wait for messages", _runner(blpop), until=deadline)
        return reply is not None

    def _build_reserve_keys(self, names: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
        keys: list[str] = []
        for name in names:
            q = self.keys.queue(name)
            keys += [*q.ready, q.delayed, q.leased, q.msgs, q.meta, *q.dead_letters, q.wake]
        return tuple(keys), [self.keys.queue(name).wake for name in names]

    def _report_buried(self, names: tuple[str, ...], buried: list[Any]) -> None:
        """Log the corrupt entries a reserve moved to dead-letter stores."""
        by_queue: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
        for i in range(0, len(buried), 3):
            name = names[int(buried[i]) - 1]
            by_queue[name].append((text(buried[i + 1]), text(buried[i + 2])))
        for name, entries in by_queue.items():
            log_buried(name, entries)

    def requeue_orphans(self, queue: str) -> int:
        """Check all of ``queue`` for orphans now (see :mod:`petiole_redis._repair`)
        and return how many were put back in their lists. Orphans with a corrupt
        entry go to the dead-letter store; both are logged with their ids."""
        return self._orphans.run_pass(queue)

    # -- settling ------------------------------------------------------------------------

    def ack(self, delivery: Delivery) -> None:
        """Delete the message if ``delivery`` still holds its lease; otherwise do nothing."""
        lease = _lease(delivery)
        if lease is None:
            return
        q = self.keys.queue(delivery.queue)
        self._call_fast(
            f"acknowledge a message of queue {delivery.queue!r}",
            lambda c: _ACK(c, (q.leased, q.msgs, q.meta), lease),
        )

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge several deliveries in one pipelined round trip: one
        ack_many.lua call per queue (and per 500 messages), which checks each
        receipt against its own lease and deletes those that hold it. Workers send
        the acknowledgements of finished tasks this way, in batches."""
        by_queue: defaultdict[str, list[str]] = defaultdict(list)
        for delivery in deliveries:
            lease = _lease(delivery)
            if lease is not None:
                by_queue[delivery.queue] += lease
        calls = []
        for queue, argv in by_queue.items():
            q = self.keys.queue(queue)
            for at in range(0, len(argv), 2 * _ACK_BATCH):
                calls.append(
                    _ACK_MANY.args((q.leased, q.msgs, q.meta), argv[at : at + 2 * _ACK_BATCH])
                )
        if not calls:
            return
        self._call_fast(
            f"acknowledge {len(deliveries)} messages", lambda c: _run_scripts(c, calls, _ACK_MANY)
        )

    def nack(self, delivery: Delivery, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        """Requeue (due after ``delay_s``, at the tail of its priority) or delete;
        a stale receipt does nothing. The delivery count is unchanged."""
        lease = _lease(delivery)
        if lease is None:
            return
        q = self.keys.queue(delivery.queue)
        keys = (*q.ready, q.delayed, q.leased, q.msgs, q.meta, q.wake)
        argv = (*lease, 1 if requeue else 0, _ms(delay_s))
        self._call_fast(
            f"return a message to queue {delivery.queue!r}", lambda c: _NACK(c, keys, argv)
        )

    def extend(self, delivery: Delivery, *, lease_s: float) -> bool:
        """Move the lease's end to ``lease_s`` from now (server clock).

        True while ``delivery`` still holds the lease, even if it ran out and no
        reserver has swept it back yet (nothing was lost).
        """
        lease = _lease(delivery)
        if lease is None:
            return False
        q = self.keys.queue(delivery.queue)
        argv = (*lease, _ms(lease_s))
        changed = self._call_fast(
            f"extend a lease in queue {delivery.queue!r}",
            lambda c: _EXTEND(c, (q.leased, q.meta), argv),
        )
        return bool(changed)

    def dead_letter(self, delivery: Delivery, *, reason: str) -> None:
        """Move the message to its queue's dead-letter store in one script.
        A stale receipt does nothing: the newer lease's holder decides."""
        lease = _lease(delivery)
        if lease is None:
            return
        q = self.keys.queue(delivery.queue)
        keys = (q.leased, q.msgs, q.meta, q.dead, q.dead_msgs, q.dead_info, q.dead_seq)
        self._call_fast(
            f"dead-letter a message of queue {delivery.queue!r}",
            lambda c: _DEAD_LETTER(c, keys, (*lease, reason)),
        )

    # -- queues and dead letters ---------------------------------------------------------

    def purge(self, queue: str) -> int:
        """Delete every message of ``queue`` (ready, delayed, leased) in one transaction."""
        q = self.keys.queue(queue)

        def run(client: redis.Redis) -> int:
            pipe = client.pipeline(transaction=True)
            pipe.hlen(q.msgs)
            pipe.unlink(*q.live)
            return int(pipe.execute()[0])

        return self._call(f"purge queue {queue!r}", run)

    def size(self, queue: str) -> int:
        """Every message of ``queue``: ready, delayed and leased (they all have a payload)."""
        q = self.keys.queue(queue)
        return int(self._call(f"count queue {queue!r}", lambda c: c.hlen(q.msgs)))

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        q = self.keys.queue(queue)
        reply = self._call(
            f"read the dead letters of queue {queue!r}",
            lambda c: _DEAD_LIST(c, (q.dead, q.dead_msgs, q.dead_info), (limit,)),
        )
        return [
            _dead_letter(queue, reply[i], reply[i + 1], reply[i + 2])
            for i in range(0, len(reply), 3)
        ]

    def requeue_dead_letters(self, queue: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        """Republish dead letters (all, or those ids; unknown ids are ignored) with
        delivery count 0 and their priority and message id, oldest first."""
        q = self.keys.queue(queue)
        keys = (*q.ready, q.msgs, q.meta, q.dead, q.dead_msgs, q.dead_info, q.dead_seq, q.wake)
        what = f"requeue the dead letters of queue {queue!r}"
        if dead_letter_ids is not None:
            ids = list(dict.fromkeys(dead_letter_ids))
            if not ids:
                return 0
            moved, kept = self._call(
                what, partial(_REQUEUE_DEAD, keys=keys, argv=(len(ids), 0, *ids))
            )
        else:
            moved = kept = 0
            while True:
                argv = (_REQUEUE_BATCH, kept)  # those kept stay first: pass over them
                batch = self._call(what, partial(_REQUEUE_DEAD, keys=keys, argv=argv))
                moved, kept = moved + batch[0], kept + batch[1]
                if batch[0] + batch[1] < _REQUEUE_BATCH:
                    break
        if kept:
            logger.warning(
                "queue %r: %d dead letter%s could not be requeued: no payload is stored",
                queue,
                kept,
                "" if kept == 1 else "s",
            )
        return int(moved)

    def purge_dead_letters(self, queue: str) -> int:
        q = self.keys.queue(queue)

        def run(client: redis.Redis) -> int:
            pipe = client.pipeline(transaction=True)
            pipe.zcard(q.dead)
            pipe.unlink(*q.dead_letters)
            return int(pipe.execute()[0])

        return self._call(f"purge the dead letters of queue {queue!r}", run)

    # -- broadcast -----------------------------------------------------------------------------

    def broadcast(self, channel: str, payload: bytes) -> int:
        """Send ``payload`` to every current subscriber of ``channel`` (one
        ``PUBLISH``); return how many the server handed it to. Nothing is stored."""
        self._check_size(payload)
        name = self.keys.broadcast_channel(channel)
        return int(self._call(f"broadcast on {channel!r}", lambda c: c.publish(name, payload)))

    def subscribe(
        self, channels: Sequence[str], on_message: Callable[[str, bytes], None]
    ) -> Subscription:
        """Call ``on_message(channel, payload)`` for each message broadcast on
        ``channels`` from now on (see :class:`petiole.transport.Broadcast`); the
        server has the subscription when this returns. Close it when done."""
        subscription = Subscription(
            self._conn, channels, on_message, channel_key=self.keys.broadcast_channel
        )
        with self._subscriptions_lock:
            self._subscriptions.add(subscription)
        return subscription

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the subscriptions and every connection; a waiting ``reserve``
        returns ``[]``. Idempotent."""
        with self._subscriptions_lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.close()
        self._conn.close()

    def _call(self, what: str, work: Callable[[redis.Redis], T]) -> T:
        try:
            return self._conn.call(what, work)
        except Closed:
            raise TransportError(f"{self._conn.describe()} is closed ({what})") from None

    def _call_fast(self, what: str, work: Callable[[FastClient], T]) -> T:
        try:
            return self._conn.call_fast(what, work)
        except Closed:
            raise TransportError(f"{self._conn.describe()} is closed ({what})") from None


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _runner(args: tuple[Any, ...]) -> Callable[[FastClient], Any]:
    return lambda client: command(client, *args)


def _deliveries(reply: list[Any], names: tuple[str, ...], lease_end_ms: int) -> list[Delivery]:
    """The leased messages of a reserve.lua reply (see there for its shape)."""
    expires_at = lease_end_ms / 1000
    out: list[Delivery] = []
    for i in range(4, len(reply), 2):
        index, ident, count, message_id = reply[i].decode().split("|", 3)
        out.append(
            Delivery(
                payload=reply[i + 1],
                queue=names[int(index) - 1],
                receipt=f"{ident}:{count}",
                delivery_count=int(count),
                message_id=message_id,
                lease_expires_at=expires_at,
            )
        )
    return out


def _dead_letter(queue: str, ident: bytes, raw_info: bytes, payload: bytes) -> DeadLetter:
    """A dead letter from dead_list.lua's reply; an info that is missing or
    unreadable (edited by hand) still lists the dead letter, with defaults."""
    try:
        info = json.loads(bytes(raw_info).decode(errors="replace")) if raw_info else {}
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    reason = info.get("reason")
    count, dead_at_ms = info.get("count"), info.get("dead_at_ms")
    return DeadLetter(
        dead_letter_id=text(ident),
        queue=queue,
        reason=reason if isinstance(reason, str) else "(its dead-letter info is unreadable)",
        delivery_count=count if isinstance(count, int) else 0,
        dead_at=dead_at_ms / 1000 if isinstance(dead_at_ms, (int, float)) else 0.0,
        payload=bytes(payload),
    )


def _no_script(reply: object) -> bool:
    return isinstance(reply, NoScriptError)


def _run_scripts(client: FastClient, calls: list[tuple[Any, ...]], script: Script) -> None:
    """Run ``calls`` (``script.args(...)`` each) in one pipelined round trip; after
    a server restart (empty script cache) load the script and run only the calls
    that did not run. Raises the first other error a call got."""
    todo = calls
    for _ in range(2):
        replies = client.execute_pipeline(todo)
        others = [r for r in replies if isinstance(r, Exception) and not _no_script(r)]
        if others:
            raise others[0]
        missing = [a for a, r in zip(todo, replies, strict=True) if _no_script(r)]
        if not missing:
            return
        command(client, "SCRIPT", "LOAD", script.source)
        todo = missing


def _lease(delivery: Delivery) -> tuple[str, str] | None:
    """``(message id, delivery count)`` from a receipt; None for one we never issued."""
    ident, _, count = delivery.receipt.rpartition(":")
    if not ident or not count.isascii() or not count.isdigit():
        return None
    return ident, count


def create_transport(url: str, options: Mapping[str, Any]) -> Transport:
    """Build a :class:`RedisTransport` for a ``redis://``, ``rediss://`` or ``unix://`` URL."""
    return RedisTransport(url, options)
