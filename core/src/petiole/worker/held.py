"""What a supervised worker process holds, told to its supervisor, so that the
prefetched messages of one that dies go back to the queue at once.

A prefork worker process reserves its own messages (16 at a time by default).
Killed (SIGKILL, the OOM killer, a segfault), it leaves them leased: on a broker
whose leases expire (Redis, SQLite, SQS) they would wait out their lease (30 s)
while the other processes sit idle. So each process keeps, in memory it shares
with its supervisor (an anonymous mapping made before the fork; no system call
and no wake-up of the supervisor per task or per reserve):

- **what it holds**, rewritten after each reserve: queue, receipt, delivery
  count and message id of each message (never the payload). Messages settled
  since are stale receipts, which a transport's ``nack`` ignores;
- **which it is running**, rewritten as each task starts.

Each is written to the half of its region not in use, then that half is named
current (one byte), so a process killed mid-write leaves the previous one whole.

When the process dies, the supervisor returns (``nack`` with requeue) what it
held and was not running. The running task is *not* returned: a task that kills
its process would otherwise go straight to the next one and kill it too; it
comes back when its lease ends, as before, and ``max_deliveries`` dead-letters a
message that keeps killing its worker. A finished task whose acknowledgement
was still in the batch (a few ms) runs again, as after any crash before an ack:
at least once, never lost. A process holding more than a half page describes
(about 500 messages) has its messages wait for their leases.
"""

from __future__ import annotations

import logging
import mmap
import struct
from collections.abc import Sequence

from petiole.app import Petiole
from petiole.errors import PetioleError
from petiole.transport import Delivery

logger = logging.getLogger("petiole.worker")

_LENGTH = struct.Struct("<I")
_UNKNOWN = 0xFFFFFFFF  # "too much to describe": return nothing
_HELD_BYTES = 65536  # per half: a snapshot of what a process holds
_RUNNING_BYTES = 4096  # per half: the receipts of its running tasks


class _Region:
    """Bytes one process writes and another reads after the writer died: two
    halves and a byte naming the current one, so a write cut short by the
    writer's death leaves the last complete value current."""

    def __init__(self, page: mmap.mmap, at: int, half: int) -> None:
        self._page, self._at, self._half = page, at, half
        _LENGTH.pack_into(page, at + 1, 0)

    @staticmethod
    def size(half: int) -> int:
        return 1 + 2 * half

    def write(self, data: bytes | None) -> None:
        """Make ``data`` current; None (or too much to hold) means unknown."""
        page = self._page
        spare = (page[self._at] & 1) ^ 1
        start = self._at + 1 + spare * self._half
        if data is None or _LENGTH.size + len(data) > self._half:
            _LENGTH.pack_into(page, start, _UNKNOWN)
        else:
            page[start + _LENGTH.size : start + _LENGTH.size + len(data)] = data
            _LENGTH.pack_into(page, start, len(data))
        page[self._at] = spare

    def read(self) -> bytes | None:
        """The current value; None when it did not fit (unknown)."""
        page = self._page
        start = self._at + 1 + (page[self._at] & 1) * self._half
        (length,) = _LENGTH.unpack_from(page, start)
        if length == _UNKNOWN or _LENGTH.size + length > self._half:
            return None
        return page[start + _LENGTH.size : start + _LENGTH.size + length]


class HeldChannel:
    """One worker process's shared page; made by the supervisor before each fork,
    written by the child through its :meth:`reporter`, read after it died."""

    def __init__(self) -> None:
        held_size = _Region.size(_HELD_BYTES)
        # Anonymous and shared: what the child writes, the supervisor reads.
        self._page = mmap.mmap(-1, held_size + _Region.size(_RUNNING_BYTES))
        self._held = _Region(self._page, 0, _HELD_BYTES)
        self._running = _Region(self._page, held_size, _RUNNING_BYTES)

    def reporter(self) -> HeldReporter:
        """In the forked worker process: how it writes to the page."""
        return HeldReporter(self._held, self._running)

    def unfinished(self) -> list[Delivery]:
        """After the process died: what it held and was not running, to return."""
        held, running = self._held.read(), self._running.read()
        if not held or running is None:
            return []
        skip = frozenset(running.decode().split("\0"))
        fields = held.decode().split("\0")
        return [
            Delivery(b"", queue, receipt, int(count), message_id)
            for queue, receipt, count, message_id in zip(*[iter(fields)] * 4, strict=True)
            if receipt not in skip
        ]

    def close(self) -> None:
        self._page.close()


class HeldReporter:
    """A worker process's side of its :class:`HeldChannel`."""

    def __init__(self, held: _Region, running: _Region) -> None:
        self._held, self._running = held, running

    def held(self, deliveries: Sequence[Delivery]) -> None:
        """Every message the process holds now (replacing the last ones told)."""
        # NUL-separated fields: five times cheaper than JSON, once per reserve.
        text = "\0".join(
            [f"{d.queue}\0{d.receipt}\0{d.delivery_count}\0{d.message_id}" for d in deliveries]
        )
        if deliveries and text.count("\0") != 4 * len(deliveries) - 1:
            self._held.write(None)  # a NUL in a name or receipt: cannot be told apart
        else:
            self._held.write(text.encode())

    def running(self, receipts: Sequence[str]) -> None:
        """The receipts of the tasks running now (replacing the last ones told)."""
        if len(receipts) == 1:  # solo and prefork: one running task, told per task
            receipt = receipts[0]
            self._running.write(None if "\0" in receipt else receipt.encode())
            return
        text = "\0".join(receipts)
        if receipts and text.count("\0") != len(receipts) - 1:
            self._running.write(None)  # a NUL in a receipt: return none of them
        else:
            self._running.write(text.encode())


def return_to_queue(app: Petiole, index: int, deliveries: Sequence[Delivery]) -> None:
    """The supervisor's ``release``: requeue ``deliveries`` of dead worker process
    ``index`` through a transport of its own, closed again at once (the app's would
    be inherited, connection and all, by the next process forked)."""
    returned = 0
    try:
        transport = app.new_transport()
        try:
            for delivery in deliveries:
                transport.nack(delivery, requeue=True)
                returned += 1
        finally:
            transport.close()
    except PetioleError as exc:
        logger.warning(
            "could not return what worker process %d held (%s): %d message(s) come back "
            "when their leases end",
            index,
            exc,
            len(deliveries) - returned,
        )
        return
    logger.info(
        "returned the messages worker process %d held and had not started (%d receipts, "
        "those already acknowledged ignored) to their queues",
        index,
        returned,
    )
