"""Keys, scripts, receipts and entries of the streams layout (see :mod:`petiole_redis.streams`).

Key names follow :mod:`petiole_redis._keys` (``<prefix>:<kind>:{<queue>}``, the
queue in a Cluster hash tag); the kinds below are the layout's own, and the
dead-letter keys are the list layout's, shared::

    <p>:stream0:{q} .. <p>:stream9:{q}  stream  one per priority in use; group "petiole"
    <p>:sdelayed:{q}                    zset    delayed id -> due time (ms, server clock)
    <p>:sdelaydata:{q}                  hash    "<id>:m" -> "<count>|<priority>|<message_id>",
                                                "<id>:d" -> payload
    <p>:sprios:{q}                      set     priorities above 0 that have a stream
    <p>:dead:{q} ...                    the dead-letter store (see _keys.py)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from petiole.transport import Delivery
from petiole_redis._client import Script
from petiole_redis._keys import PRIORITIES, Keys
from petiole_redis._repair import text

GROUP = "petiole"
# The fields every entry must have: priority, message id, payload. "c" (the
# delivery count carried from an earlier entry of the same message) is optional.
REQUIRED_FIELDS = (b"p", b"m", b"d")


@dataclass(frozen=True, slots=True)
class StreamKeys:
    """The keys of one queue in the streams layout."""

    streams: tuple[str, ...]  # indexed by priority
    delayed: str
    delayed_data: str
    priorities: str
    dead_letters: tuple[str, str, str, str]  # dead zset, msgs, info, sequence

    @property
    def live(self) -> tuple[str, ...]:
        """Every key holding live messages: what ``purge`` deletes. The
        priorities set stays: a publisher may rely on a priority it registered."""
        return (*self.streams, self.delayed, self.delayed_data)


def stream_keys(keys: Keys, queue: str) -> StreamKeys:
    tag = f"{{{queue}}}"
    prefix = keys.prefix
    q = keys.queue(queue)
    return StreamKeys(
        streams=tuple(f"{prefix}:stream{p}:{tag}" for p in range(PRIORITIES)),
        delayed=f"{prefix}:sdelayed:{tag}",
        delayed_data=f"{prefix}:sdelaydata:{tag}",
        priorities=f"{prefix}:sprios:{tag}",
        dead_letters=(q.dead, q.dead_msgs, q.dead_info, q.dead_seq),
    )


@dataclass(frozen=True, slots=True)
class Lease:
    """What a receipt names: one pending entry, held by one transport instance
    with one pending delivery count. A receipt is
    ``<priority>|<entry id>|<instance>|<count>|<queue>``: entry ids are unique only
    per stream (two queues' streams hand out the same id within a millisecond),
    and a worker files what it holds by receipt, so the queue is part of it."""

    priority: int
    entry_id: str
    instance: str
    count: str  # the group's delivery count of the pending entry, as the server writes it
    queue: str

    @property
    def receipt(self) -> str:
        return receipt_of(self.priority, self.entry_id, self.instance, self.count, self.queue)

    @property
    def dead_letter_id(self) -> str:
        """Entry ids are unique per stream; the priority makes them unique per queue."""
        return f"{self.entry_id}.{self.priority}"


def parse_receipt(receipt: str) -> Lease | None:
    """The lease a receipt names; None for one this layout never issued."""
    parts = receipt.split("|", 4)
    if len(parts) != 5:
        return None
    priority, entry_id, instance, count, queue = parts
    if not (priority.isdigit() and int(priority) < PRIORITIES and count.isdigit() and instance):
        return None
    return Lease(int(priority), entry_id, instance, count, queue)


def receipt_of(priority: int, entry_id: str, instance: str, count: object, queue: str) -> str:
    return f"{priority}|{entry_id}|{instance}|{count}|{queue}"


@dataclass(frozen=True, slots=True)
class Entry:
    """A stream entry read (or claimed) by this transport, not yet checked."""

    queue: str
    priority: int
    entry_id: str
    fields: dict[bytes, bytes]
    pending_count: int  # the group's delivery count: 1 when read fresh

    @classmethod
    def from_reply(
        cls, queue: str, priority: int, entry_id: Any, flat: Sequence[Any], pending_count: int
    ) -> Entry:
        fields = {bytes(flat[i]): bytes(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
        return cls(queue, priority, text(entry_id), fields, pending_count)

    def corrupt_reason(self) -> str | None:
        """Why this entry cannot be delivered, or None."""
        missing = [f.decode() for f in REQUIRED_FIELDS if f not in self.fields]
        if not missing:
            return None
        has = ", ".join(sorted(text(f) for f in self.fields)) or "none"
        return f"corrupt entry: its field(s) {', '.join(missing)} are missing (it has: {has})"

    def lease(self, instance: str) -> Lease:
        return Lease(self.priority, self.entry_id, instance, str(self.pending_count), self.queue)

    def delivery(self, instance: str, lease_expires_at: float) -> Delivery:
        carried = self.fields.get(b"c", b"0")
        return Delivery(
            payload=self.fields[b"d"],
            queue=self.queue,
            receipt=self.lease(instance).receipt,
            delivery_count=(int(carried) if carried.isdigit() else 0) + self.pending_count,
            message_id=self.fields[b"m"].decode(errors="replace"),
            lease_expires_at=lease_expires_at,
        )


# A fresh entry (read by XREADGROUP ... >) as a publish writes it: these fields in
# this order (the nonce n a resent publish looks for; see streams_publish.lua).
_FRESH_FIELDS = (b"p", b"m", b"n", b"d")

# What a reserve read: (queue, priority, entry id, flat field-value list).
RawEntry = tuple[str, int, Any, Sequence[Any]]


def fresh_delivery(raw: RawEntry, instance: str, lease_expires_at: float) -> Delivery | None:
    """The delivery of an entry read for the first time, when it has exactly the
    fields a publish writes (the usual case: no :class:`Entry`, no field dict);
    None for any other shape, which :meth:`Entry.from_reply` then checks."""
    queue, priority, entry_id, flat = raw
    if len(flat) != 8 or (flat[0], flat[2], flat[4], flat[6]) != _FRESH_FIELDS:
        return None
    ident = text(entry_id)
    return Delivery(
        payload=flat[7],
        queue=queue,
        receipt=receipt_of(priority, ident, instance, 1, queue),
        delivery_count=1,
        message_id=flat[3].decode(errors="replace"),
        lease_expires_at=lease_expires_at,
    )


def streams_script(name: str) -> Script:
    """A script of the layout (``lua/<name>.lua``), with lib.lua and streams_lib.lua
    prepended: it still runs as one self-contained ``EVALSHA``."""
    script = Script(name)
    folder = resources.files("petiole_redis") / "lua"
    libraries = [(folder / lib).read_bytes() for lib in ("lib.lua", "streams_lib.lua")]
    script.source = b"\n".join([*libraries, script.source])
    script.sha = hashlib.sha1(script.source, usedforsecurity=False).hexdigest()
    return script
