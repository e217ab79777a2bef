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

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from petiole.ids import random_hex
from petiole.transport import Delivery, Transport, check_queue_names
from petiole_redis._broker import COMPONENT, BrokerBase, ms, run_scripts
from petiole_redis._client import Client, Closed, FastClient, Script, StillDown, command
from petiole_redis._keys import PRIORITIES
from petiole_redis._options import parse_url
from petiole_redis._repair import OrphanCheck, log_buried, text

logger = logging.getLogger("petiole_redis")

# The most expired leases and due delayed messages one reserve moves per queue,
# so a huge backlog never makes one script call long.
_SWEEP_LIMIT = 1000
_PUBLISH = Script("publish")
_RESERVE = Script("reserve", library=True)
_ACK = Script("ack")
_ACK_MANY = Script("ack_many")
# Receipts per ack_many.lua call: bounds the arguments of one command in the script.
_ACK_BATCH = 500
_NACK = Script("nack", library=True)
_EXTEND = Script("extend")
_DEAD_LETTER = Script("dead_letter", library=True)
_REQUEUE_DEAD = Script("requeue_dead", library=True)


class RedisTransport(BrokerBase):
    """A :class:`~petiole.transport.Transport` on Redis (see the module docstring)."""

    publish_script = _PUBLISH

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(url, options)
        self._reserve_keys = lru_cache(maxsize=256)(self._build_reserve_keys)
        self._orphans = OrphanCheck(
            self._conn, self.keys, interval_s=self.options.orphan_check_interval_s
        )
        # .until: {queues: monotonic time} for this thread's reserves whose last
        # call drained those queues: the next one blocks first (see reserve).
        self._idle = threading.local()

    # -- publishing ----------------------------------------------------------------

    def _publish_call(
        self, queue: str, payload: bytes, message_id: str, delay_s: float, priority: int
    ) -> tuple[Any, ...]:
        """publish.lua for one message: a random id the script refuses twice, so a
        publish resent after a lost reply (an outage) stores nothing twice."""
        return _PUBLISH.args(*self._publish_args(queue, payload, message_id, delay_s, priority))

    def _publish_args(
        self, queue: str, payload: bytes, message_id: str, delay_s: float, priority: int
    ) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        """The keys and arguments of publish.lua for one message."""
        q = self.keys.queue(queue)
        prio = min(max(int(priority), 0), PRIORITIES - 1)
        keys = (q.ready[prio], q.delayed, q.msgs, q.meta, q.wake)
        argv = (random_hex(12), payload, f"0|{prio}|{message_id}", ms(delay_s))
        return keys, argv

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
        argv = (int(max_messages), ms(lease_s), _SWEEP_LIMIT)
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
            f"acknowledge {len(deliveries)} messages", lambda c: run_scripts(c, calls, _ACK_MANY)
        )

    def nack(self, delivery: Delivery, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        """Requeue (due after ``delay_s``, at the tail of its priority) or delete;
        a stale receipt does nothing. The delivery count is unchanged."""
        lease = _lease(delivery)
        if lease is None:
            return
        q = self.keys.queue(delivery.queue)
        keys = (*q.ready, q.delayed, q.leased, q.msgs, q.meta, q.wake)
        argv = (*lease, 1 if requeue else 0, ms(delay_s))
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
        argv = (*lease, ms(lease_s))
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

        def run(client: Client) -> int:
            counted, _ = client.transaction([("HLEN", q.msgs), ("UNLINK", *q.live)])
            return int(counted)

        return self._call(f"purge queue {queue!r}", run)

    def size(self, queue: str) -> int:
        """Every message of ``queue``: ready, delayed and leased (they all have a payload)."""
        q = self.keys.queue(queue)
        return int(self._call(f"count queue {queue!r}", lambda c: command(c, "HLEN", q.msgs)))

    def _requeue_dead_call(self, queue: str) -> tuple[Script, tuple[str, ...]]:
        q = self.keys.queue(queue)
        keys = (*q.ready, q.msgs, q.meta, q.dead, q.dead_msgs, q.dead_info, q.dead_seq, q.wake)
        return _REQUEUE_DEAD, keys


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


def _lease(delivery: Delivery) -> tuple[str, str] | None:
    """``(message id, delivery count)`` from a receipt; None for one we never issued."""
    ident, _, count = delivery.receipt.rpartition(":")
    if not ident or not count.isascii() or not count.isdigit():
        return None
    return ident, count


def create_transport(url: str, options: Mapping[str, Any]) -> Transport:
    """Build a :class:`RedisTransport` for a ``redis://``, ``rediss://`` or ``unix://`` URL."""
    if parse_url(url, options, component=COMPONENT).options.layout == "streams":
        from petiole_redis.streams import StreamsTransport  # here: streams.py imports this module

        return StreamsTransport(url, options)
    return RedisTransport(url, options)
