"""Repairs of a queue's entries in Redis: the orphan check, and the log lines of
every repair (the transport's reserve logs its dead-lettered corrupt entries here).

**Orphans.** A message whose payload is in the msgs hash but whose id is in no
ready list, delayed set or leased set would never be delivered (left by an
older version, a manual edit, a script that failed halfway). The orphan check
puts such messages back at the tail of their priority's list, delivery count
unchanged; one with a corrupt meta goes to the dead-letter store instead. Both
are logged with their ids (WARNING and ERROR).

**Where it runs, and its cost.** From the transport's ``reserve``, so in the
workers only, one bounded step at a time (``requeue_orphans.lua``):

* A step reads up to :data:`SCAN_COUNT` ids of one queue's msgs hash with
  ``HSCAN`` from a cursor (without the payloads on Redis 7.4+), keeps those
  neither delayed nor leased, and tests them against the queue's ready lists,
  which it reads whole, but only while they hold at most :data:`READY_LIMIT`
  ids: with a longer backlog the step decides nothing (its ids are
  "undecided") and a later pass looks again.
* The cursor and the time the next step is due live in Redis
  (``<prefix>:orphanscan:{queue}``), so all workers of a queue share one
  check: a step at most every :data:`STEP_S` while a pass is under way, and a
  new pass ``orphan_check_interval_s`` (60 s by default; 0 turns the check
  off) after the last one ended. Each transport asks whether a step is due at
  most every :data:`POLL_S` (one cheap script call per queue).

:meth:`OrphanCheck.run_pass` (``RedisTransport.requeue_orphans``) runs a whole
pass of one queue at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from petiole.errors import TransportError
from petiole_redis._client import Closed, Connector, Script, StillDown
from petiole_redis._keys import Keys

logger = logging.getLogger("petiole_redis")

SCAN_COUNT = 200  # ids read per step
READY_LIMIT = 10_000  # the most ready ids a step reads to test membership
STEP_S = 1.0  # the least time between two steps of a pass, shared by all clients
POLL_S = 2.0  # how often one transport asks whether a step is due
_IDS_LOGGED = 20  # ids named in one log line; the rest are counted

_REQUEUE_ORPHANS = Script("requeue_orphans", library=True)


class OrphanCheck:
    """The orphan check of one transport's queues (see the module docstring)."""

    def __init__(self, conn: Connector, keys: Keys, *, interval_s: float) -> None:
        self._conn = conn
        self._keys = keys
        self.interval_s = interval_s
        self._ask_at = 0.0  # monotonic: when to ask next whether a step is due

    def run_due_step(self, queues: Sequence[str], *, until: float) -> None:
        """One step per queue if the server says one is due; at most every
        :data:`POLL_S`. Gives up quietly when the server is down past ``until``;
        a failure is logged, not raised: the reserve that runs this goes on."""
        now = time.monotonic()
        if self.interval_s <= 0 or now < self._ask_at:
            return
        self._ask_at = now + min(POLL_S, self.interval_s)
        argv = ("auto", SCAN_COUNT, READY_LIMIT, _ms(self.interval_s), _ms(STEP_S))
        for queue in queues:
            try:
                reply = self._conn.call_fast(
                    "check for orphaned messages",
                    partial(_REQUEUE_ORPHANS, keys=self._queue_keys(queue), argv=argv),
                    until=until,
                )
            except (Closed, StillDown):
                return
            except TransportError as exc:
                logger.warning(
                    "queue %r: the orphan check failed (%s); next try in %g s",
                    queue,
                    exc,
                    self.interval_s,
                )
                self._ask_at = time.monotonic() + self.interval_s
                return
            _report_step(queue, reply)

    def run_pass(self, queue: str) -> int:
        """Check all of ``queue`` now; return how many orphans were requeued."""
        keys = self._queue_keys(queue)
        what = f"check queue {queue!r} for orphaned messages"
        cursor, requeued, undecided = "0", 0, 0
        while True:
            argv = (cursor, SCAN_COUNT, READY_LIMIT, 0, 0)
            try:
                reply = self._conn.call(what, partial(_REQUEUE_ORPHANS, keys=keys, argv=argv))
            except Closed:
                raise TransportError(f"{self._conn.describe()} is closed ({what})") from None
            requeued += _report_step(queue, reply)
            undecided += int(reply[3])
            cursor = text(reply[0])
            if cursor == "0":
                break
        if undecided:
            logger.info(
                "queue %r: %d messages were not checked for orphans: its ready lists hold "
                "more than %d ids; a later check will",
                queue,
                undecided,
                READY_LIMIT,
            )
        return requeued

    def _queue_keys(self, queue: str) -> tuple[str, ...]:
        q = self._keys.queue(queue)
        return (
            *q.ready,
            q.delayed,
            q.leased,
            q.msgs,
            q.meta,
            *q.dead_letters,
            q.orphan_scan,
            q.wake,
        )


def _report_step(queue: str, reply: list[Any]) -> int:
    """Log what one step did (requeue_orphans.lua's reply); return how many it requeued."""
    requeued = [text(i) for i in reply[1]]
    buried = reply[2]
    if requeued:
        logger.warning(
            "queue %r: requeued %d orphaned message%s (stored, but in no ready list, "
            "delayed set or leased set): %s",
            queue,
            len(requeued),
            "" if len(requeued) == 1 else "s",
            _some(requeued),
        )
    if buried:
        log_buried(
            queue, [(text(buried[i]), text(buried[i + 1])) for i in range(0, len(buried), 2)]
        )
    return len(requeued)


def log_buried(queue: str, entries: Sequence[tuple[str, str]]) -> None:
    """Log corrupt entries moved to the dead-letter store: ``(id, reason)`` pairs."""
    logger.error(
        "queue %r: moved %d corrupt entr%s to the dead-letter store: %s",
        queue,
        len(entries),
        "y" if len(entries) == 1 else "ies",
        _some([f"{ident} ({reason})" for ident, reason in entries]),
    )


def text(value: bytes | str) -> str:
    """A reply's bytes as text (ids and reasons are ASCII unless edited by hand)."""
    return value if isinstance(value, str) else bytes(value).decode(errors="replace")


def _some(items: Sequence[str]) -> str:
    """Items for a log line: the first ``_IDS_LOGGED`` and how many more."""
    shown = ", ".join(items[:_IDS_LOGGED])
    more = len(items) - _IDS_LOGGED
    return f"{shown} and {more} more" if more > 0 else shown


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
