"""Every Redis key and channel name the plugin uses, built in one place.

A name is ``<prefix>:<kind>:<name>``: the prefix is the ``key_prefix`` option
(default ``petiole``) and a kind is one word without a colon, so two different
queues, task ids or kinds can never produce the same key. A queue's keys wrap
the queue name in braces (a Redis Cluster hash tag), so all keys of one queue
hash to the same slot.

Per queue (see the headers of the Lua scripts for how each is used)::

    <p>:ready0:{q} .. <p>:ready9:{q}   list   message ids due now, one list per priority
    <p>:delayed:{q}                    zset   message id -> due time (ms, server clock)
    <p>:leased:{q}                     zset   message id -> lease end (ms, server clock)
    <p>:msgs:{q}                       hash   message id -> payload
    <p>:meta:{q}                       hash   message id -> "<count>|<priority>|<message_id>"
    <p>:wake:{q}                       list   at most one token: "something was published"
    <p>:dead:{q}                       zset   dead letter id -> sequence number (oldest first)
    <p>:deadmsgs:{q}                   hash   dead letter id -> payload
    <p>:deadinfo:{q}                   hash   dead letter id -> JSON (reason, count, time, ...)
    <p>:deadseq:{q}                    string the dead-letter sequence counter
    <p>:orphanscan:{q}                 hash   the orphan check's progress: HSCAN cursor and
                                              when its next step is due (requeue_orphans.lua)

Results::

    <p>:result:<task id>    string  the encoded ResultRecord (see results.py; waiters
                                    are woken by the server's tracking of their reads)
    <p>:set:<key>           set     chord members
    <p>:counter:<key>       string  counters
    <p>:claim:<key>         string  the owner of a claim, or the value of a mark
    <p>:lease:<name>        string  the holder of a lease, expiring with it (lease_*.lua)
    <p>:incr:<token>        string  the answer of one incr call, kept briefly so a retry
                                    after a lost reply returns it instead of adding twice

Per key prefix (and database)::

    <p>:epoch               string  a random token written by the first client to find
                                    none; a new token means the data was lost (_client.py)

Broadcast::

    <p>:broadcast:<channel> channel fan-out messages
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

PRIORITIES = 10  # 0-9, higher first
DEFAULT_PREFIX = "petiole"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one queue."""

    ready: tuple[str, ...]  # indexed by priority
    delayed: str
    leased: str
    msgs: str
    meta: str
    wake: str
    dead: str
    dead_msgs: str
    dead_info: str
    dead_seq: str
    orphan_scan: str

    @property
    def live(self) -> tuple[str, ...]:
        """Every key holding live (not dead) messages: what ``purge`` deletes."""
        return (*self.ready, self.delayed, self.leased, self.msgs, self.meta, self.wake)

    @property
    def dead_letters(self) -> tuple[str, ...]:
        return (self.dead, self.dead_msgs, self.dead_info, self.dead_seq)


class Keys:
    """Builds key names under one prefix. Queue key sets are cached (they are
    rebuilt on every reserve otherwise)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.queue = lru_cache(maxsize=1024)(self._queue)

    def _queue(self, queue: str) -> QueueKeys:
        tag = f"{{{queue}}}"

        def key(kind: str) -> str:
            return f"{self.prefix}:{kind}:{tag}"

        return QueueKeys(
            ready=tuple(key(f"ready{p}") for p in range(PRIORITIES)),
            delayed=key("delayed"),
            leased=key("leased"),
            msgs=key("msgs"),
            meta=key("meta"),
            wake=key("wake"),
            dead=key("dead"),
            dead_msgs=key("deadmsgs"),
            dead_info=key("deadinfo"),
            dead_seq=key("deadseq"),
            orphan_scan=key("orphanscan"),
        )

    @property
    def epoch(self) -> str:
        return f"{self.prefix}:epoch"

    def result(self, task_id: str) -> str:
        return f"{self.prefix}:result:{task_id}"

    def set(self, key: str) -> str:
        return f"{self.prefix}:set:{key}"

    def counter(self, key: str) -> str:
        return f"{self.prefix}:counter:{key}"

    def claim(self, key: str) -> str:
        return f"{self.prefix}:claim:{key}"

    def lease(self, name: str) -> str:
        return f"{self.prefix}:lease:{name}"

    def incr_token(self, token: str) -> str:
        return f"{self.prefix}:incr:{token}"

    def broadcast_channel(self, channel: str) -> str:
        return f"{self.prefix}:broadcast:{channel}"
