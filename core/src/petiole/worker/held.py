"""What a supervised worker process holds, told to its supervisor, so that the
prefetched messages of one that dies go back to the queue at once.

A prefork worker process reserves its own messages (16 at a time by default).
Killed (SIGKILL, the OOM killer, a segfault), it leaves them leased: on a broker
whose leases expire (Redis, SQLite, SQS) they would wait out their lease (30 s)
while the other processes sit idle. So each process tells its supervisor what it
reserved, and which of those it is running, and the supervisor returns the rest
(``nack`` with requeue) when the process dies:

- **What it reserved** goes down a pipe, one small frame per reserve (queue,
  receipt, delivery count, message id: never the payload), written without
  blocking: a frame the pipe has no room for is dropped, and those messages
  merely wait for their leases as before. The supervisor keeps the last
  :data:`REMEMBERED` per process; receipts already acknowledged are stale, and a
  transport ignores a ``nack`` of a stale receipt.
- **Which it is running** is written to a page of shared memory (no system
  call per task). Those messages are *not* returned: a task that kills its
  process would otherwise go straight to the next one and kill it too. They come
  back when their lease ends, as before, and ``max_deliveries`` dead-letters a
  message that keeps killing its worker.

A finished task whose acknowledgement was still in the batch (a few ms) runs
again, as after any crash before an ack: at least once, never lost.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import mmap
import os
import select
import struct
from collections.abc import Iterable, Sequence

from petiole.app import Petiole, scheme_of
from petiole.errors import PetioleError
from petiole.transport import Delivery

logger = logging.getLogger("petiole.worker")

#: Deliveries the supervisor remembers per worker process (the most recent).
REMEMBERED = 1024
_RUNNING_BYTES = 4096
_LENGTH = struct.Struct("<I")
# A write of at most PIPE_BUF bytes to a pipe is all or nothing, even non-blocking:
# a frame is never torn.
_FRAME_MAX = select.PIPE_BUF

Entry = tuple[str, str, int, str]  # queue, receipt, delivery count, message id


class HeldChannel:
    """One worker process's pipe and running page; made by the supervisor before
    each fork, then used from both sides (:meth:`reporter` in the child)."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._running = mmap.mmap(-1, _RUNNING_BYTES)  # shared with the child across fork
        self._buffer = bytearray()
        self._held: collections.deque[Entry] = collections.deque(maxlen=REMEMBERED)

    @property
    def fd(self) -> int:
        """What the supervisor waits on to :meth:`read`."""
        return self._read_fd

    # -- the child's side ------------------------------------------------------------

    def reporter(self) -> HeldReporter:
        """In the forked worker process: its end of the channel."""
        os.close(self._read_fd)
        return HeldReporter(self._write_fd, self._running)

    def abandon(self) -> None:
        """In a worker process forked for another slot: not its channel."""
        with contextlib.suppress(OSError):
            os.close(self._read_fd)

    # -- the supervisor's side -------------------------------------------------------

    def forked(self) -> None:
        """In the supervisor, once the child has its end."""
        os.close(self._write_fd)
        self._write_fd = -1

    def read(self) -> None:
        """Take in what the pipe holds (call when :attr:`fd` is readable)."""
        while True:
            try:
                chunk = os.read(self._read_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._buffer += chunk
        while len(self._buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self._buffer)
            end = _LENGTH.size + size
            if len(self._buffer) < end:
                break
            entries = json.loads(self._buffer[_LENGTH.size : end])
            del self._buffer[:end]
            self._held.extend((q, receipt, int(n), m) for q, receipt, n, m in entries)

    def unfinished(self) -> list[Delivery]:
        """After the process died: what it reserved and was not running, to return."""
        self.read()
        running = _running_receipts(self._running)
        return [
            Delivery(b"", queue, receipt, count, message_id)
            for queue, receipt, count, message_id in self._held
            if receipt not in running
        ]

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fd = self._write_fd = -1
        self._running.close()


class HeldReporter:
    """A worker process's end of its :class:`HeldChannel`."""

    def __init__(self, write_fd: int, running: mmap.mmap) -> None:
        self._write_fd = write_fd
        self._running = running
        self._dropped = False

    def reserved(self, deliveries: Sequence[Delivery]) -> None:
        """Tell the supervisor about messages just reserved (never blocks)."""
        entries = [(d.queue, d.receipt, d.delivery_count, d.message_id) for d in deliveries]
        for frame in _frames(entries):
            try:
                os.write(self._write_fd, frame)
            except (BlockingIOError, BrokenPipeError):
                if not self._dropped:
                    self._dropped = True
                    logger.debug(
                        "the supervisor is not reading what this process holds; messages "
                        "of this process that dies now wait for their leases"
                    )
                return

    def running(self, receipts: Iterable[str]) -> None:
        """The receipts of the tasks running now (replacing the last ones told)."""
        data = "\n".join(receipts).encode()
        if len(data) > _RUNNING_BYTES - _LENGTH.size:
            # Too many to tell: the supervisor then returns none of them.
            _LENGTH.pack_into(self._running, 0, 0xFFFFFFFF)
            return
        self._running[_LENGTH.size : _LENGTH.size + len(data)] = data
        _LENGTH.pack_into(self._running, 0, len(data))


class _Everything(frozenset[str]):
    """Every receipt counts as running (the process ran more than its page holds)."""

    def __contains__(self, item: object) -> bool:
        return True


def _running_receipts(page: mmap.mmap) -> frozenset[str]:
    (size,) = _LENGTH.unpack_from(page)
    if size == 0xFFFFFFFF:
        return _Everything()
    data = page[_LENGTH.size : _LENGTH.size + size]
    return frozenset(data.decode().split("\n")) if data else frozenset()


def _frames(entries: list[Entry]) -> Iterable[bytes]:
    """``entries`` as length-prefixed JSON of at most PIPE_BUF bytes each (an entry
    too large for one alone is left out: that message waits for its lease)."""
    if not entries:
        return
    body = json.dumps(entries, separators=(",", ":")).encode()
    if _LENGTH.size + len(body) <= _FRAME_MAX:
        yield _LENGTH.pack(len(body)) + body
    elif len(entries) > 1:
        half = len(entries) // 2
        yield from _frames(entries[:half])
        yield from _frames(entries[half:])


def return_to_queue(app: Petiole, index: int, deliveries: Sequence[Delivery]) -> None:
    """The supervisor's ``release``: requeue ``deliveries`` of dead worker process
    ``index`` through a transport of its own, closed again at once (the app's would
    be inherited, connection and all, by the next process forked)."""
    settings = app.settings
    url = settings.broker_url
    factory = app.plugins.get("transport", scheme_of(url)).component
    returned = 0
    try:
        transport = factory(url, settings.broker_options)
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
