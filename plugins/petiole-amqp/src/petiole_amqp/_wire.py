"""Below pika's public API, for speed: how a :class:`~._link.Link`'s connection
writes, reads and lets other threads in.

pika 1.x spends more Python per message than a message needs; what is done here
takes some of it out, while pika keeps every protocol decision (channels,
consumers, confirms, closing). Each piece falls back to pika's own path when
what it relies on is not there (another poller, a TLS socket, a frame it does
not know), so a pika that changed inside is slower, not wrong.

* **Writing** (:class:`WireConnection`). pika sends each frame with a ``send()``
  of its own, and only on its loop's next turn (two ``epoll_ctl`` calls and a
  turn of the loop per write). Here a message's frames go out in one write;
  while the I/O thread drains its queued work (:meth:`WireConnection.holding`),
  the frames of all of it go out in one write at the end; and a write with
  nothing queued before it goes to the socket at once.
* **Reading** (:meth:`WireConnection._on_data_available`). A ``basic.deliver``
  whose frames are all in the buffer goes from the bytes to the consumer's
  callback in one step, instead of three frame objects through pika's callback
  registry, content assembler and a copy of the rest of the buffer per frame;
  the socket is read 64 KiB at a time, not 4 KiB, and not again after a read
  that did not fill that (:func:`_consume`). Every other frame goes through
  pika as before, in order.
* **Letting other threads in** (:func:`lock_released_while_polling`). The I/O
  thread holds a lock except while it waits in ``epoll``. A thread with work for
  the connection (a publish, acks) that finds the lock free does the work itself,
  under the lock, instead of waking the I/O thread and waiting for it to be
  scheduled: a hand-off measured at 100 to 200 µs of a round trip on two cores
  (benchmarks/README.md, "Where one W3 round trip's time goes").
"""

from __future__ import annotations

import contextlib
import select
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import pika.frame
import pika.spec
from pika.adapters.select_connection import EPollPoller, IOLoop, SelectConnection
from pika.adapters.utils.io_services_utils import _AsyncPlaintextTransport

# Frames held during one drain of the I/O thread's work are written at its end, or
# as soon as this much is held (a batch of large messages need not all sit in memory).
_MAX_HELD_BYTES = 1 << 20
# What one recv() may take (pika's is 4 KiB: a burst of deliveries took a recv and a
# turn of the parsing loop per 8 or so messages).
RECV_BYTES = 1 << 16

_FRAME_HEAD = struct.Struct(">BHL")  # type, channel, payload size
_U32 = struct.Struct(">I")
_CONTENT_HEAD = struct.Struct(">HHQ")  # class, weight, body size
_METHOD, _HEADER, _BODY = 1, 2, 3
_FRAME_END = 0xCE
_DELIVER = pika.spec.Basic.Deliver.INDEX
# A frame's header (7 bytes) and end marker (1).
_OVERHEAD = 8


class WireConnection(SelectConnection):
    """pika's ``SelectConnection``, writing and reading as the module docstring says."""

    _held: list[bytes] | None = None
    _held_bytes = 0
    # pika's own, missing from its type stubs.
    bytes_sent: int
    frames_sent: int
    bytes_received: int
    frames_received: int
    _frame_buffer: bytes
    _channels: dict[int, Any]
    _transport: Any
    _adapter_emit_data: Callable[[bytes], None]
    _process_frame: Callable[[Any], None]

    # -- writing ------------------------------------------------------------------

    def _output_marshaled_frames(self, marshaled_frames: Sequence[bytes]) -> None:
        # What pika's own method counts (its heartbeat checker reads bytes_sent).
        for marshaled in marshaled_frames:
            self.bytes_sent += len(marshaled)
            self.frames_sent += 1
        if self._held is None:
            self._emit(b"".join(marshaled_frames))
            return
        self._held.extend(marshaled_frames)
        self._held_bytes += sum(len(marshaled) for marshaled in marshaled_frames)
        if self._held_bytes >= _MAX_HELD_BYTES:
            self._release()

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Hold the frames written in the block; write them in one go at its end."""
        if self._held is not None:  # a drain inside a drain: the outer one writes
            yield
            return
        self._held = []
        try:
            yield
        finally:
            self._release()
            self._held = None

    def _release(self) -> None:
        held, self._held, self._held_bytes = self._held or [], [], 0
        # A connection that closed meanwhile has no transport to write to; what it
        # held was unconfirmed publishes (failed on close, sent again) and acks
        # (their deliveries come back).
        if held and not self.is_closed:
            self._emit(b"".join(held))

    def _emit(self, data: bytes) -> None:
        """Write ``data``: to the socket now when nothing waits to go before it (the
        rest, if the socket takes part, is pika's to send on its loop's next turn)."""
        transport = self._transport
        if (
            _plaintext(transport)
            and not transport.get_write_buffer_size()
            and transport._state == transport._STATE_ACTIVE
        ):
            try:
                sent = transport._sock.send(data)
            except OSError:  # would block, or broken: pika's own write meets it
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        self._adapter_emit_data(data)

    # -- reading ------------------------------------------------------------------

    def _proto_connection_made(self, transport: Any) -> None:
        super()._proto_connection_made(transport)  # type: ignore[misc]
        if _plaintext(transport):
            transport._consume = partial(_consume, transport)

    def _on_data_available(self, data_in: bytes) -> None:
        """Dispatch the complete frames in the buffer, in order: deliveries directly
        (:meth:`_deliver`), the rest through pika (``_process_frame``)."""
        buffer = self._frame_buffer + data_in if self._frame_buffer else data_in
        # pika replaces the buffer when the stream ends under a frame's processing;
        # then what is left of this one is for a connection that is gone.
        self._frame_buffer = buffer
        size = len(buffer)
        offset = 0
        try:
            while size - offset >= _OVERHEAD:
                if buffer.startswith(b"AMQP", offset):  # a refused protocol version
                    frame_end, value = pika.frame.decode_frame(buffer[offset:])
                    if value is None:
                        return
                    offset += frame_end
                    self.bytes_received += frame_end
                    self._process_frame(value)
                    if self._frame_buffer is not buffer:
                        return
                    continue
                kind, number, length = _head(buffer, offset)
                end = offset + length + _OVERHEAD
                if end > size:
                    return  # the rest of the frame is still on its way
                if (
                    kind == _METHOD
                    and length >= 4
                    and _U32.unpack_from(buffer, offset + 7)[0] == _DELIVER
                ):
                    taken = self._deliver(buffer, offset, end, number)
                    if taken == 0:
                        return  # the message's other frames are still on their way
                    if taken > 0:
                        offset = taken
                        if self._frame_buffer is not buffer:
                            return
                        continue
                frame_end, value = pika.frame.decode_frame(buffer[offset:end])
                if value is None:  # cannot happen with the whole frame here; as pika
                    return
                offset = end
                self.bytes_received += frame_end
                self._process_frame(value)
                if self._frame_buffer is not buffer:
                    return
        finally:
            if self._frame_buffer is buffer:
                self._frame_buffer = buffer[offset:] if offset else buffer

    def _deliver(self, buffer: bytes, offset: int, end: int, number: int) -> int:
        """The ``basic.deliver`` method frame at ``buffer[offset:end]``: when its
        header and body frames are all in the buffer, hand the message to its
        consumer and return the offset past them; 0 when they are not all here
        yet; -1 to leave the frame to pika (a channel or consumer pika would treat
        specially, a malformed or unexpected frame: pika reports it as it does)."""
        channel = self._channels.get(number)
        assembler = getattr(channel, "_content_assembler", None)
        if channel is None or assembler is None or assembler._method_frame is not None:
            return -1
        size = len(buffer)
        header_at = end
        if size - header_at < _OVERHEAD:
            return 0
        kind, header_number, length = _head(buffer, header_at)
        header_end = header_at + length + _OVERHEAD
        if header_end > size:
            return 0
        if (
            kind != _HEADER
            or header_number != number
            or length < 14
            or buffer[header_end - 1] != _FRAME_END
            or buffer[end - 1] != _FRAME_END
        ):
            return -1
        class_id, _weight, body_size = _CONTENT_HEAD.unpack_from(buffer, header_at + 7)
        if class_id != pika.spec.BasicProperties.INDEX:
            return -1
        position = header_end
        fragments: list[bytes] = []
        received = 0
        while received < body_size:
            if size - position < _OVERHEAD:
                return 0
            kind, body_number, length = _head(buffer, position)
            body_end = position + length + _OVERHEAD
            if body_end > size:
                return 0
            if kind != _BODY or body_number != number or buffer[body_end - 1] != _FRAME_END:
                return -1
            fragments.append(buffer[position + 7 : body_end - 1])
            received += length
            position = body_end
        if received != body_size:
            return -1  # longer than announced: pika raises BodyTooLongError
        method = pika.spec.Basic.Deliver()
        method.decode(buffer, offset + 11)  # past the frame's head and the method id
        tag = method.consumer_tag
        consumers = getattr(channel, "_consumers", None)
        cancelled = getattr(channel, "_cancelled", None)
        if consumers is None or cancelled is None or tag in cancelled or tag not in consumers:
            return -1  # pika rejects it (a cancelled consumer), or logs it
        callback = consumers[tag]
        properties = pika.spec.BasicProperties()
        properties.decode(buffer[header_at + 19 : header_end - 1])  # past class, weight, size
        self.frames_received += 2 + len(fragments)
        self.bytes_received += position - offset
        body = fragments[0] if len(fragments) == 1 else b"".join(fragments)
        callback(channel, method, properties, body)
        return position


def _head(buffer: bytes, offset: int) -> tuple[int, int, int]:
    """The frame's type, channel and payload size."""
    kind, channel, size = _FRAME_HEAD.unpack_from(buffer, offset)
    return kind, channel, size


def _consume(transport: Any) -> None:
    """pika's ``_consume`` for a plaintext socket (the readable event's handler):
    reads of :data:`RECV_BYTES`, and none after a read that did not fill them.
    pika reads 4 KiB at a time until a read fails with ``EAGAIN``: that last
    read, its exception and its handling came after every burst of frames, the
    reply a caller waits for included, delaying it by as much (the waiting
    thread needs the GIL the I/O thread holds until it waits in ``epoll``
    again). ``epoll`` is level-triggered: bytes that arrive meanwhile wake the
    loop again."""
    consumed = 0
    while transport._state == transport._STATE_ACTIVE and consumed < transport._MAX_CONSUME_BYTES:
        data = transport._sock.recv(RECV_BYTES)  # EINTR is retried by Python itself
        if not data:
            raise transport.RxEndOfFile()
        consumed += len(data)
        transport._protocol.data_received(data)
        if len(data) < RECV_BYTES:
            return


def _plaintext(transport: Any) -> bool:
    """A transport whose socket this module may write to (not TLS: an SSL socket
    has a state of its own that only pika's transport keeps right)."""
    return type(transport) is _AsyncPlaintextTransport


class _EpollReleasing:
    """``select.epoll`` as pika's poller uses it, releasing ``lock`` while it waits."""

    def __init__(self, lock: threading.Lock) -> None:
        self._epoll = select.epoll()
        self._lock = lock

    def poll(self, timeout: float = -1) -> list[tuple[int, int]]:
        self._lock.release()
        try:
            return self._epoll.poll(timeout)
        finally:
            self._lock.acquire()

    def register(self, fd: int, events: int) -> None:
        self._epoll.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        self._epoll.modify(fd, events)

    def unregister(self, fd: int) -> None:
        self._epoll.unregister(fd)

    def close(self) -> None:
        self._epoll.close()


def lock_released_while_polling(ioloop: IOLoop) -> threading.Lock:
    """A lock for ``ioloop``'s thread to take before starting the loop: the loop
    then holds it except while it waits in ``epoll``, so the thread that acquires
    it (without blocking) has the connection to itself until it releases it.

    Where the loop's poller is not pika's ``EPollPoller`` (not Linux, or a pika
    built otherwise) the lock is never released: every caller hands its work to
    the loop, as before this existed.

    A timer another thread adds meanwhile would wait for the loop's next wake-up:
    only publishes and acks (which add none) are run this way.
    """
    lock = threading.Lock()
    poller = getattr(ioloop, "_poller", None)
    if type(poller) is EPollPoller and hasattr(poller, "_create_poller"):
        # pika creates the epoll object when the loop starts (_init_poller).
        poller._create_poller = lambda: _EpollReleasing(lock)
    return lock
