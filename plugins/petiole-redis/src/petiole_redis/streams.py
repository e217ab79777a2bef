"""The Redis transport's streams layout: ``layout = "streams"``, the default.

The list layout (:mod:`petiole_redis.transport`) keeps a message in three keys
and moves it with scripts: about 22 commands per send-run-wait round trip. This
layout keeps a message in one **stream entry** and lets Redis's consumer groups
do the leasing, so the transport's share of a round trip is 6 commands (as
``INFO commandstats`` counts them, a script's own included): a publish is one
``XADD``, an idle worker's reserve one ``XREADGROUP ... BLOCK`` (it returns the
message itself: no wake list), an ack one script (``EVALSHA``, ``XPENDING``,
``XACK``, ``XDEL``). A worker's send-run-wait round trip measured 6.8 commands
in all, result and waits included (the list layout: about 22).

**Keys** (see :mod:`petiole_redis.streams_entries`): per queue one stream per
priority in use, each with the consumer group ``petiole`` (created at ``0`` with
``MKSTREAM`` when a reader first needs it, ``BUSYGROUP`` ignored); a sorted set
and a hash of delayed messages; a set of the priorities above 0 in use. Dead
letters use the list layout's store and format, so ``petiole dlq`` works alike.

**Publish.** Priority 0, due now: one ``XADD`` of the fields ``p`` (priority),
``m`` (message id), ``n`` (a random nonce), ``d`` (payload). Another priority: a
script (three commands) that adds the entry and registers the priority; the
first message of a priority wakes the readers of stream 0, which only then read
that stream. A publish resent after a lost reply (an outage) goes through the
script, which adds the entry only if the stream took none with its nonce since
the first sending (a bounded look: see ``nonce_seen`` in streams_lib.lua).
Delayed publishes are ids in a sorted set, their meta and payload in a hash,
written by a script under the nonce (a resend rewrites the same one).

**Leases.** A lease is the group's pending entry (PEL): owned by the consumer
``<instance>~<lease ms>``, where ``instance`` is unique per transport object, and
ended once its idle time reaches that lease. Putting the lease length in the
consumer's name lets leases of different lengths live side by side without a
write per reserve (a sorted set of lease ends would cost one). ``extend`` moves
the entry, ``XCLAIM ... JUSTID``, to the instance's consumer for the new length,
which resets its idle time without counting a delivery. A receipt is
``<priority>|<entry id>|<instance>|<pending count>|<queue>`` (the queue because
entry ids are unique only per stream, and receipts must be unique among a
transport's deliveries): ack, nack, extend and
dead-letter check with ``XPENDING`` that the entry is still pending, owned by a
consumer of that instance, with that count, before acting (a script each), so
a stale receipt is a no-op. ``Delivery.delivery_count`` is the group's count
plus the ``c`` field a requeued message carries from its earlier entries.

**Taking over expired leases** is part of an upkeep script (``streams_tend.lua``)
a reserving worker runs when it is due: at most every ``tend_interval_s`` (1 s)
while it works, after each block of up to 5 s while it idles, and at the next
due time it knows of (a lease or delayed message of its queues, as the script
reports, or one it made itself). It moves due delayed messages into their
streams, lists the priorities in use, and claims, with ``XCLAIM``, each
consumer's pending entries idle for that consumer's lease. Not ``XAUTOCLAIM``
(the brief's first idea): its single min-idle-time cannot respect leases of
different lengths. An idle worker therefore notices a lease taken and lost by
another worker within its block (5 s) of the lease's end, as with the list
layout.

**Reserve.** One stream (a queue using priority 0 only, the usual case): one
``XREADGROUP GROUP petiole <consumer> COUNT n [BLOCK ms] STREAMS s >``.
Several streams (queues, priorities): ``COUNT`` applies per stream, so a
script reads them in order of preference (earlier queues, then higher
priority), never taking more than ``max_messages``; only when that found
nothing does the worker block on all of them, and after a reserve that found
nothing the next one blocks at once. A blocked read served after data arrived
in several streams at once may return more than asked: the extra deliveries
stay leased to this transport and are the next reserve's first (those whose
lease ended meanwhile are dropped; they come back through the takeover);
closing the transport gives back those still held, as ``nack`` would.

**Delays.** A delayed publish or nack whose due time is the earliest of its
queue wakes the readers blocked on stream 0 (an entry added and deleted at
once: the blocked ``XREADGROUP`` returns empty and plans again); a busy worker
learns it at its next upkeep (within ``tend_interval_s``).

**Corrupt entries** (a field missing) are moved to the dead-letter store with a
reason naming the missing fields when read, and logged; corrupt delayed
messages likewise when due. **Outages** and lost data are
:class:`~petiole_redis._client.Connector`'s, as in the list layout.
**Broadcast** is the list layout's pub/sub (:mod:`petiole_redis._pubsub`).

**Capabilities** are the list layout's. One difference: a message given back
by ``nack`` is a new entry at the tail of its stream (the list layout pushes it
to the tail too, so FIFO claims are the same); an expired lease comes back
before new messages, as there.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from petiole.errors import PetioleError, TransportError
from petiole.ids import random_hex
from petiole.transport import Delivery, check_queue_names
from petiole_redis._broker import BrokerBase, ms, run_scripts, settle_script_replies
from petiole_redis._client import Client, Closed, FastClient, Script, StillDown, command
from petiole_redis._errors import ResponseError, raise_first_error
from petiole_redis._keys import PRIORITIES
from petiole_redis._repair import log_buried, text
from petiole_redis.streams_entries import (
    GROUP,
    Entry,
    Lease,
    RawEntry,
    StreamKeys,
    fresh_delivery,
    parse_receipt,
    stream_keys,
    streams_script,
)

logger = logging.getLogger("petiole_redis")

# The most delayed messages moved, and pending entries looked at per consumer,
# by one upkeep call per queue.
_SWEEP_LIMIT = 1000
# A consumer with nothing pending and unseen this long is deleted from its group: a
# stopped or killed worker's (one per stream it read). Deleting one with nothing
# pending loses nothing, even a live one's: its next read or claim creates it again.
_FORGET_CONSUMER_MS = 300_000
_ACK_BATCH = 500  # receipts per ack script call
# A read's errors when its stream's group is gone: never made, or the stream was
# deleted (a purge) while the read blocked on it. The group is made again.
_GROUP_GONE = ("NOGROUP", "UNBLOCKED the stream key no longer exists")


_PUBLISH = streams_script("streams_publish")
_READ = streams_script("streams_read")
_TEND = streams_script("streams_tend")
_ACK = streams_script("streams_ack")
_EXTEND = streams_script("streams_extend")
_NACK = streams_script("streams_nack")
_DEAD_LETTER = streams_script("streams_dead_letter")
_REQUEUE_DEAD = streams_script("streams_requeue_dead")
_ADOPT = streams_script("streams_adopt")
_FORGET = streams_script("streams_forget")
# How often a worker looks, per queue, for messages in the list layout's keys (one
# HLEN), and how many one adopt call moves.
_ADOPT_INTERVAL_S = 30.0
_ADOPT_BATCH = 1000
# How long closing tries to give back messages read ahead (the server may be down).
_GIVE_BACK_S = 2.0


@dataclass(frozen=True, slots=True)
class _Stream:
    """One stream a reserve reads: its key, queue and priority."""

    key: str
    queue: str
    priority: int


class StreamsTransport(BrokerBase):
    """A :class:`~petiole.transport.Transport` on Redis streams (see the module docstring)."""

    publish_script = _PUBLISH

    #: The longest a working reserver goes without the upkeep script (expired
    #: leases, due delayed messages, priorities in use). A float, for tests.
    tend_interval_s: float = 1.0

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(url, options)
        # Unique per transport object: its consumers are "<instance>~<lease ms>".
        self.instance = f"{os.getpid()}.{os.urandom(6).hex()}"
        self._queue_keys: Callable[[str], StreamKeys] = lru_cache(maxsize=1024)(
            partial(stream_keys, self.keys)
        )
        self._lock = threading.Lock()
        self._priorities: dict[str, tuple[int, ...]] = {}  # per queue, highest first
        self._grouped: set[str] = set()  # streams known to have the group
        # Per queue (monotonic): when to look for messages in the list layout's keys.
        self._adopt_at: dict[str, float] = {}
        # Per set of queues (monotonic): when the upkeep is next due by the interval,
        # and when something of theirs comes due (a lease, a delayed message).
        self._tend_at: dict[tuple[str, ...], float] = {}
        self._event_at: dict[tuple[str, ...], float] = {}
        self._own_due = math.inf  # monotonic: a lease or delay this transport made ends
        self._quiet: set[tuple[str, ...]] = set()  # queue sets found empty: block at once
        self._extra: dict[tuple[str, ...], list[Delivery]] = {}  # read beyond max_messages

    # -- publishing ----------------------------------------------------------------

    def _publish_call(
        self, queue: str, payload: bytes, message_id: str, delay_s: float, priority: int
    ) -> tuple[Any, ...]:
        """The command that stores one message: a plain ``XADD`` in the usual case,
        with a random nonce :meth:`_resend_call` looks for. A delayed one makes this
        transport's reserves run the upkeep when it is due."""
        q = self._queue_keys(queue)
        prio = min(max(int(priority), 0), PRIORITIES - 1)
        delay_ms = ms(delay_s)
        # Random, not a counter: a forked process's copy of a counter would repeat
        # it, and a resend that found another's entry would drop its own message.
        nonce = random_hex(8)
        if delay_ms > 0:
            self._note_own_due(delay_s)
        if prio == 0 and delay_ms == 0:
            return ("XADD", q.streams[0], "*", "p", "0", "m", message_id, "n", nonce, "d", payload)
        keys = (q.streams[prio], q.streams[0], q.priorities, q.delayed, q.delayed_data)
        return _PUBLISH.args(keys, (prio, message_id, payload, delay_ms, nonce, 0))

    def _resend_call(self, call: tuple[Any, ...], sent_ms_ago: int) -> tuple[Any, ...]:
        """The call that resends a publish whose first sending ``sent_ms_ago`` may
        have been stored though its reply was lost: streams_publish.lua with that
        window, which adds the entry only if the stream holds none with its nonce
        (a delayed one rewrites its random id, which stores nothing twice either)."""
        if call[0] == "XADD":  # see _publish_call: the entry touches its stream only
            stream, message_id, nonce, payload = call[1], call[6], call[8], call[10]
            return _PUBLISH.args((stream,) * 5, (0, message_id, payload, 0, nonce, sent_ms_ago))
        return (*call[:-1], sent_ms_ago)  # a streams_publish.lua call: its window is last

    def _note_own_due(self, seconds: float) -> None:
        """Something this transport made (a lease, a delay) ends in ``seconds``:
        its reserves run the upkeep then, without waiting for the interval."""
        at = time.monotonic() + seconds
        with self._lock:
            self._own_due = min(self._own_due, at)

    # -- reserving -------------------------------------------------------------------

    def reserve(
        self, queues: Sequence[str], *, max_messages: int, wait_s: float, lease_s: float
    ) -> list[Delivery]:
        """Lease up to ``max_messages`` messages: expired leases taken over first,
        then earlier queues, higher priority, oldest. Waits up to ``wait_s`` in a
        blocking read; ``[]`` at once if the transport is closed meanwhile, and
        ``[]`` after ``wait_s`` while the server is down."""
        return self._reserve(queues, [], max_messages, wait_s, lease_s)

    def ack_and_reserve(
        self,
        acks: Sequence[Delivery],
        queues: Sequence[str],
        *,
        max_messages: int,
        wait_s: float,
        lease_s: float,
    ) -> list[Delivery]:
        """:meth:`ack_many` then :meth:`reserve`
        (:class:`~petiole.transport.AcksWhileReserving`): the ack scripts go in
        the same write as the blocking ``XREADGROUP``, so a worker that just
        finished a task makes one request, not two, and Redis runs the acks
        before the read blocks. Where the reserve starts with another request
        (the upkeep, leftovers of an earlier read) the acks go on their own first."""
        return self._reserve(queues, self._ack_calls(acks), max_messages, wait_s, lease_s)

    def _reserve(
        self,
        queues: Sequence[str],
        acks: list[tuple[Any, ...]],
        max_messages: int,
        wait_s: float,
        lease_s: float,
    ) -> list[Delivery]:
        names = tuple(check_queue_names(queues, allow_none=True))
        if max_messages <= 0 or not names:
            if acks:
                self._send_acks(acks)
            return []
        deadline = time.monotonic() + max(wait_s, 0.0)
        consumer = f"{self.instance}~{ms(lease_s)}"
        try:
            got = self._take_extra(names, max_messages)
            if acks and (got or self._tend_due(names)):
                self._send_acks(acks)
                acks = []
            while not got:
                if self._tend_due(names):
                    got = self._tend(names, consumer, max_messages, lease_s, deadline)
                    if got:
                        break
                got = self._read(names, consumer, max_messages, lease_s, deadline, acks)
                acks = []
                if time.monotonic() >= deadline:
                    break
        except (Closed, StillDown):
            if acks:
                raise TransportError(
                    f"{self._conn.describe()}: acknowledge messages in a reserve's request: "
                    "the server is unreachable, or the transport was closed"
                ) from None
            return []
        if got:
            self._note_own_due(lease_s)
        return got

    def _take_extra(self, names: tuple[str, ...], max_messages: int) -> list[Delivery]:
        """Deliveries an earlier reserve read beyond its ``max_messages``, still leased."""
        with self._lock:
            held = self._extra.pop(names, [])
            live = [d for d in held if d.lease_expires_at > time.time()]
            if len(live) > max_messages:
                self._extra[names] = live[max_messages:]
        return live[:max_messages]

    def _tend_due(self, names: tuple[str, ...]) -> bool:
        due = min(self._tend_at.get(names, 0.0), self._event_at.get(names, 0.0), self._own_due)
        return time.monotonic() >= due

    def _until_event_s(self, names: tuple[str, ...]) -> float:
        """How long a blocking read may last before something comes due. Not the
        interval: an idle worker blocks for up to ``_max_block_s`` between upkeeps."""
        due = min(self._event_at.get(names, 0.0), self._own_due)
        return max(due - time.monotonic(), 0.0)

    def _tend(
        self,
        names: tuple[str, ...],
        consumer: str,
        max_messages: int,
        lease_s: float,
        deadline: float,
    ) -> list[Delivery]:
        """Run the upkeep script for ``names`` (see the module docstring); return
        the expired leases it took over, as deliveries."""
        keys: list[str] = []
        for name in names:
            q = self._queue_keys(name)
            keys += [*q.streams, q.delayed, q.delayed_data, q.priorities, *q.dead_letters]
        argv = (GROUP, consumer, max_messages, _SWEEP_LIMIT, _FORGET_CONSUMER_MS)
        started = time.monotonic()
        reply = self._conn.call_fast(
            "take over expired leases", lambda c: _TEND(c, keys, argv), until=deadline
        )
        now_ms, next_due_ms, priorities, claimed, buried = reply
        event_s = math.inf
        if int(next_due_ms) >= 0:
            event_s = max((int(next_due_ms) - int(now_ms)) / 1000, 0.0)
        with self._lock:
            self._tend_at[names] = started + self.tend_interval_s
            self._event_at[names] = started + event_s
            if self._own_due <= started:
                self._own_due = math.inf
            for name, used in zip(names, priorities, strict=True):
                self._priorities[name] = tuple(sorted({int(p) for p in used}, reverse=True))
        if buried:
            for i in range(0, len(buried), 3):
                log_buried(names[int(buried[i]) - 1], [(text(buried[i + 1]), text(buried[i + 2]))])
        entries = [
            Entry.from_reply(
                names[int(claimed[i]) - 1],
                int(claimed[i + 1]),
                claimed[i + 2],
                claimed[i + 4],
                int(claimed[i + 3]),
            )
            for i in range(0, len(claimed), 5)
        ]
        return self._deliver(entries, lease_s)

    def _plan(self, names: tuple[str, ...]) -> list[_Stream]:
        """The streams of ``names`` in order of preference, their groups created."""
        plan = [
            _Stream(self._queue_keys(name).streams[p], name, p)
            for name in names
            for p in self._priorities.get(name, (0,))
        ]
        now = time.monotonic()
        due = [name for name in names if self._adopt_at.get(name, 0.0) <= now]
        if due:
            self._adopt_list_layout_messages(due, now)
        self._ensure_groups([s.key for s in plan])
        return plan

    def _adopt_list_layout_messages(self, names: Sequence[str], now: float) -> None:
        """Move the messages the list layout's keys hold of ``names`` into their
        streams: an upgrade from that layout (the default before this one), or a
        producer not yet upgraded, loses nothing. Looked for every 30 s per queue
        (one ``HLEN`` each); moved by streams_adopt.lua, 1,000 per call."""
        keys = [self.keys.queue(name).msgs for name in names]
        counts = self._conn.call_fast(
            "look for messages in the list layout",
            lambda c: c.execute_pipeline([("HLEN", key) for key in keys]),
        )
        with self._lock:
            self._adopt_at.update(dict.fromkeys(names, now + _ADOPT_INTERVAL_S))
        for name, count in zip(names, counts, strict=True):
            if isinstance(count, int) and count > 0:
                self._adopt(name)

    def _adopt(self, name: str) -> None:
        old, new = self.keys.queue(name), self._queue_keys(name)
        keys = (
            *old.ready, old.delayed, old.leased, old.msgs, old.meta,
            *new.streams, new.priorities, new.delayed, new.delayed_data, *new.dead_letters,
        )  # fmt: skip
        moved = buried = 0
        while True:
            reply = self._conn.call_fast(
                f"move queue {name!r}'s messages from the list layout",
                lambda c: _ADOPT(c, keys, (_ADOPT_BATCH,)),
            )
            took, dead, left = (int(n) for n in reply)
            moved, buried = moved + took, buried + dead
            if took + dead < _ADOPT_BATCH:
                break
        with self._lock:
            self._priorities.pop(name, None)  # learn the priorities in use again
            self._tend_at.clear()  # and take the delayed ones when due
        logger.warning(
            "queue %r: moved %d message(s) from the list layout's keys into its streams "
            '(layout = "streams")%s%s',
            name,
            moved,
            f"; {buried} corrupt one(s) went to the dead letters" if buried else "",
            f"; {left} still leased to list-layout workers, moved once their leases end"
            if left
            else "",
        )

    def _ensure_groups(self, keys: Sequence[str]) -> None:
        """Create the group of each stream not known to have it (``MKSTREAM``,
        from the stream's start: messages published before are delivered)."""
        todo = [key for key in keys if key not in self._grouped]
        if not todo:
            return
        calls = [("XGROUP", "CREATE", key, GROUP, "0", "MKSTREAM") for key in todo]
        replies = self._conn.call_fast(
            "create consumer groups", lambda c: c.execute_pipeline([("INFO", "server"), *calls])
        )
        _check_version(self._conn.describe(), replies.pop(0))
        for reply in replies:
            if isinstance(reply, ResponseError) and not str(reply).startswith("BUSYGROUP"):
                raise TransportError(f"{self._conn.describe()}: create a consumer group: {reply}")
        with self._lock:
            self._grouped.update(todo)

    def _forget_groups(self, keys: Sequence[str]) -> None:
        """These streams lost their group (purged, or the server lost its data)."""
        with self._lock:
            self._grouped.difference_update(keys)

    def _read(
        self,
        names: tuple[str, ...],
        consumer: str,
        max_messages: int,
        lease_s: float,
        deadline: float,
        acks: list[tuple[Any, ...]],
    ) -> list[Delivery]:
        """Read new messages: in order of preference without blocking when there
        are several streams (unless the last look found them all empty), then
        blocking on all of them until a message comes, the upkeep is due, or the
        deadline (at most ``_max_block_s``). ``acks`` (ack script calls) go in
        the blocking read's request, or on their own before the first other one."""
        plan = self._plan(names)
        remaining_s = deadline - time.monotonic()
        if len(plan) > 1 and (remaining_s <= 0 or names not in self._quiet):
            if acks:
                self._send_acks(acks)
                acks = []
            entries = self._read_in_order(plan, consumer, max_messages, deadline)
            if entries:
                self._quiet.discard(names)
                return self._deliver_read(entries, lease_s)
            self._quiet.add(names)
            remaining_s = deadline - time.monotonic()
        block_ms: int | None = None
        if remaining_s > 0:
            block_s = min(remaining_s, self._until_event_s(names), self._max_block_s)
            block_ms = max(1, ms(block_s))
        elif len(plan) > 1:
            if acks:
                self._send_acks(acks)
            return []
        entries = self._read_blocking(names, plan, consumer, max_messages, block_ms, deadline, acks)
        if not entries:
            return []
        self._quiet.discard(names)
        deliveries = self._deliver_read(entries, lease_s)
        if len(deliveries) > max_messages:
            with self._lock:
                self._extra[names] = deliveries[max_messages:] + self._extra.get(names, [])
        return deliveries[:max_messages]

    def _read_in_order(
        self, plan: list[_Stream], consumer: str, max_messages: int, deadline: float
    ) -> list[RawEntry]:
        keys = [s.key for s in plan]
        argv = (GROUP, consumer, max_messages)
        reply = self._conn.call_fast("reserve", lambda c: _READ(c, keys, argv), until=deadline)
        if reply[0]:
            self._forget_groups([keys[int(i) - 1] for i in reply[0]])
        found: list[RawEntry] = []
        for i in range(1, len(reply), 3):
            stream = plan[int(reply[i]) - 1]
            found.append((stream.queue, stream.priority, reply[i + 1], reply[i + 2]))
        return found

    def _read_blocking(
        self,
        names: tuple[str, ...],
        plan: list[_Stream],
        consumer: str,
        max_messages: int,
        block_ms: int | None,
        deadline: float,
        acks: list[tuple[Any, ...]],
    ) -> list[RawEntry]:
        """One ``XREADGROUP`` over every stream of ``plan`` (blocking when
        ``block_ms``), after ``acks`` in the same write; entries in order of
        preference."""
        by_key = {s.key.encode(): (index, s) for index, s in enumerate(plan)}
        args: tuple[Any, ...] = ("XREADGROUP", "GROUP", GROUP, consumer, "COUNT", max_messages)
        if block_ms is not None:
            args += ("BLOCK", block_ms)
        args += ("STREAMS", *(s.key for s in plan), *(">" for _ in plan))

        def read(client: FastClient) -> Any:
            if acks:
                *acked, reply = client.execute_pipeline([*acks, args])
                # After a restart (no scripts cached) the read ran all the same.
                settle_script_replies(client, acks, acked, _ACK)
                if not isinstance(reply, ResponseError):
                    return reply
                if not str(reply).startswith(_GROUP_GONE):
                    raise reply
                return reply
            try:
                return command(client, *args)
            except ResponseError as exc:
                if not str(exc).startswith(_GROUP_GONE):
                    raise
                return exc

        reply = self._conn.call_fast("reserve", read, until=deadline)
        if isinstance(reply, ResponseError):
            self._forget_groups([s.key for s in plan])
            return []
        if reply is None:
            return []
        found: list[tuple[int, tuple[int, int], RawEntry]] = []
        for key, entries in reply:
            index, stream = by_key[bytes(key)]
            if not entries:
                # Woken with nothing: a sooner due time or a new priority.
                with self._lock:
                    self._event_at[names] = 0.0
            for entry_id, flat in entries:
                raw = (stream.queue, stream.priority, entry_id, flat)
                found.append((index, _id_order(text(entry_id)) if len(plan) > 1 else (0, 0), raw))
        if len(plan) > 1:  # one stream's entries come in order already
            found.sort(key=lambda f: (f[0], f[1]))
        return [raw for _, _, raw in found]

    def _deliver_read(self, raws: Sequence[RawEntry], lease_s: float) -> list[Delivery]:
        """Deliveries of entries read for the first time (pending count 1): those
        of the usual shape at once, the others checked as :meth:`_deliver` does."""
        expires_at = time.time() + lease_s
        out: list[Delivery] = []
        for raw in raws:
            delivery = fresh_delivery(raw, self.instance, expires_at)
            if delivery is None:
                # Rare (a requeued message's carried count, a corrupt entry): all
                # checked the slow way, so the order of preference is kept.
                entries = [Entry.from_reply(*other, pending_count=1) for other in raws]
                return self._deliver(entries, lease_s)
            out.append(delivery)
        return out

    def _deliver(self, entries: Sequence[Entry], lease_s: float) -> list[Delivery]:
        """Deliveries of the good entries; corrupt ones go to the dead-letter store."""
        expires_at = time.time() + lease_s
        out: list[Delivery] = []
        corrupt: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
        for entry in entries:
            reason = entry.corrupt_reason()
            if reason is None:
                out.append(entry.delivery(self.instance, expires_at))
                continue
            self._dead_letter_lease(entry.queue, entry.lease(self.instance), reason)
            corrupt[entry.queue].append((entry.lease(self.instance).dead_letter_id, reason))
        for queue, buried in corrupt.items():
            log_buried(queue, buried)
        return out

    # -- settling ------------------------------------------------------------------------

    def ack(self, delivery: Delivery) -> None:
        """Delete the message if ``delivery`` still holds its lease; otherwise do nothing
        (:meth:`ack_many` of one: the same script, one round trip)."""
        self.ack_many([delivery])

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge several deliveries in one pipelined round trip: one script
        call per queue (and per 500 receipts), each receipt checked on its own
        against one ``XPENDING`` per stream (see streams_ack.lua)."""
        calls = self._ack_calls(deliveries)
        if calls:
            self._send_acks(calls)

    def _send_acks(self, calls: list[tuple[Any, ...]]) -> None:
        self._call_fast(
            f"acknowledge messages ({len(calls)} call(s))", lambda c: run_scripts(c, calls, _ACK)
        )

    def _ack_calls(self, deliveries: Sequence[Delivery]) -> list[tuple[Any, ...]]:
        """streams_ack.lua calls acknowledging ``deliveries``: one per queue and
        per 500 receipts."""
        by_queue: defaultdict[str, list[Lease]] = defaultdict(list)
        for delivery in deliveries:
            lease = parse_receipt(delivery.receipt)
            if lease is not None:
                by_queue[delivery.queue].append(lease)
        calls: list[tuple[Any, ...]] = []
        for queue, leases in by_queue.items():
            streams = self._queue_keys(queue).streams
            for at in range(0, len(leases), _ACK_BATCH):
                chunk = leases[at : at + _ACK_BATCH]
                keys = sorted({streams[lease.priority] for lease in chunk})
                argv: list[Any] = [GROUP]
                for lease in chunk:
                    index = keys.index(streams[lease.priority]) + 1
                    argv += [index, lease.entry_id, lease.instance, lease.count]
                calls.append(_ACK.args(keys, argv))
        return calls

    def nack(self, delivery: Delivery, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        """Requeue (a new entry at the tail of its stream, or a delayed one, with
        its delivery count) or delete; a stale receipt does nothing."""
        lease = parse_receipt(delivery.receipt)
        if lease is None:
            return
        call = self._nack_call(delivery.queue, lease, requeue, delay_s)
        self._call_fast(
            f"return a message to queue {delivery.queue!r}",
            lambda c: run_scripts(c, [call], _NACK),
        )
        if requeue and ms(delay_s) > 0:
            self._note_own_due(delay_s)

    def _nack_call(
        self, queue: str, lease: Lease, requeue: bool, delay_s: float
    ) -> tuple[Any, ...]:
        q = self._queue_keys(queue)
        keys = (q.streams[lease.priority], q.streams[0], q.priorities, q.delayed, q.delayed_data)
        argv = (
            GROUP,
            lease.entry_id,
            lease.instance,
            lease.count,
            1 if requeue else 0,
            ms(delay_s),
            lease.priority,
            os.urandom(12).hex(),
        )
        return _NACK.args(keys, argv)

    def close(self) -> None:
        """Give back the messages read beyond a reserve's ``max_messages`` and not
        handed out yet (as ``nack`` would: they need not wait for their leases to
        end), and delete this transport's consumers that hold nothing pending from
        the groups it read (else the upkeep does, 5 minutes later), trying for up to
        2 s in all; then close as every layout does. Idempotent."""
        with self._lock:
            extras = [d for held in self._extra.values() for d in held]
            self._extra.clear()
            streams = sorted(self._grouped)
        until = time.monotonic() + _GIVE_BACK_S
        calls = [
            self._nack_call(d.queue, lease, True, 0.0)
            for d in extras
            if (lease := parse_receipt(d.receipt)) is not None
        ]
        if calls:
            self._tidy(f"give back {len(calls)} messages read ahead", calls, _NACK, until)
        forget = [_FORGET.args((stream,), (GROUP, self.instance)) for stream in streams]
        if forget:
            self._tidy("delete this transport's idle consumers", forget, _FORGET, until)
        super().close()

    def _tidy(self, what: str, calls: list[tuple[Any, ...]], script: Script, until: float) -> None:
        """Closing's best effort: a server that is down or refuses is left alone."""
        with contextlib.suppress(PetioleError, Closed, StillDown):
            self._conn.call_fast(what, lambda c: run_scripts(c, calls, script), until=until)

    def extend(self, delivery: Delivery, *, lease_s: float) -> bool:
        """Renew the lease to ``lease_s`` from now: True while ``delivery`` still
        holds it (even past its end, if nobody took it over yet)."""
        lease = parse_receipt(delivery.receipt)
        if lease is None:
            return False
        stream = self._queue_keys(delivery.queue).streams[lease.priority]
        argv = (
            GROUP,
            lease.entry_id,
            lease.instance,
            lease.count,
            f"{lease.instance}~{ms(lease_s)}",
        )
        changed = self._call_fast(
            f"extend a lease in queue {delivery.queue!r}", lambda c: _EXTEND(c, (stream,), argv)
        )
        return bool(changed)

    def dead_letter(self, delivery: Delivery, *, reason: str) -> None:
        """Move the message to its queue's dead-letter store in one script.
        A stale receipt does nothing: the newer lease's holder decides."""
        lease = parse_receipt(delivery.receipt)
        if lease is not None:
            self._dead_letter_lease(delivery.queue, lease, reason)

    def _dead_letter_lease(self, queue: str, lease: Lease, reason: str) -> None:
        q = self._queue_keys(queue)
        keys = (q.streams[lease.priority], *q.dead_letters)
        argv = (
            GROUP,
            lease.entry_id,
            lease.instance,
            lease.count,
            reason,
            lease.priority,
            lease.dead_letter_id,
        )
        self._call_fast(
            f"dead-letter a message of queue {queue!r}", lambda c: _DEAD_LETTER(c, keys, argv)
        )

    # -- queues (the dead-letter store is _broker.py's) ---------------------------------------

    def purge(self, queue: str) -> int:
        """Delete every message of ``queue`` (new, leased, delayed, and any the list
        layout's keys hold) in one transaction and return how many. The streams go
        with their group; readers create it again."""
        q, old = self._queue_keys(queue), self.keys.queue(queue)

        def run(client: Client) -> int:
            counts = [("XLEN", stream) for stream in q.streams]
            counts += [("ZCARD", q.delayed), ("HLEN", old.msgs)]
            replies = client.transaction([*counts, ("UNLINK", *q.live, *old.live)])
            return sum(int(n) for n in replies[:-1])

        purged = self._call(f"purge queue {queue!r}", run)
        self._forget_groups(q.streams)
        return purged

    def size(self, queue: str) -> int:
        """Every message of ``queue``: new and leased entries, delayed ones, and
        those the list layout's keys hold, not yet moved into the streams."""
        q, old = self._queue_keys(queue), self.keys.queue(queue)

        def run(client: Client) -> int:
            counts = [("XLEN", stream) for stream in q.streams]
            counts += [("ZCARD", q.delayed), ("HLEN", old.msgs)]
            return sum(int(n) for n in raise_first_error(client.execute_pipeline(counts)))

        return self._call(f"count queue {queue!r}", run)

    def _requeue_dead_call(self, queue: str) -> tuple[Script, tuple[str, ...]]:
        q = self._queue_keys(queue)
        return _REQUEUE_DEAD, (*q.streams, q.priorities, *q.dead_letters[:3])


def _check_version(server: str, info: Any) -> None:
    """Refuse a server older than 6.2: this layout's scripts use its ``XPENDING
    ... IDLE`` and exclusive ``XRANGE`` bounds, which older ones reject as a syntax
    error that would name neither."""
    if isinstance(info, Exception):
        return  # INFO refused (a restricted user): the scripts' errors will say
    found = re.search(rb"^redis_version:(\d+)\.(\d+)", bytes(info), re.MULTILINE)
    if found and (int(found[1]), int(found[2])) < (6, 2):
        raise TransportError(
            f"{server}: the streams layout needs Redis 6.2 or later, and this server is "
            f"{found[1].decode()}.{found[2].decode()}: upgrade it, or set the broker "
            'option layout = "lists"'
        )


def _id_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id ``<ms>-<seq>`` as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
