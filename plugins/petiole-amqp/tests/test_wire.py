"""The connection's own reading, writing and locking (``_wire``), against pika's frames
and sockets, without a broker; the same paths under a broker are every other test."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pika.callback
import pika.channel
import pika.frame
import pika.spec
import pytest
from petiole_amqp._wire import RECV_BYTES, WireConnection, _consume, lock_released_while_polling
from pika.adapters.select_connection import IOLoop
from pika.adapters.utils.io_services_utils import _AsyncPlaintextTransport

from petiole.testing import wait_until

Delivered = tuple[int, Any, Any, bytes]


class Recording(WireConnection):
    """The parsing half of a connection: frames pika would handle are recorded."""

    def __init__(self, channels: dict[int, Any]) -> None:  # no socket, no pika state
        self._frame_buffer = b""
        self._channels = channels
        self._transport = None
        self.frames_received = 0
        self.bytes_received = 0
        self.log: list[object] = []

    def _process_frame(self, value: Any) -> None:
        self.log.append(("pika", value))


def consuming_channel(number: int, log: list[object], *tags: str) -> pika.channel.Channel:
    """A real pika channel with consumers registered as ``basic_consume`` leaves them."""
    connection = SimpleNamespace(callbacks=pika.callback.CallbackManager())
    channel = pika.channel.Channel(connection, number, lambda _channel: None)  # type: ignore[arg-type]

    def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        log.append(("delivered", channel.channel_number, method, properties, body))

    for tag in tags:
        channel._consumers[tag] = on_message  # type: ignore[attr-defined]
    return channel


def deliver_frames(
    number: int, tag: str, delivery_tag: int, body: bytes, *, body_frames: int = 1
) -> bytes:
    method = pika.spec.Basic.Deliver(
        consumer_tag=tag, delivery_tag=delivery_tag, redelivered=True, exchange="", routing_key="q"
    )
    properties = pika.spec.BasicProperties(
        delivery_mode=2, message_id=f"m{delivery_tag}", headers={"x-delivery-count": 3}
    )
    frames = [
        pika.frame.Method(number, method).marshal(),
        pika.frame.Header(number, len(body), properties).marshal(),
    ]
    step = max(1, -(-len(body) // body_frames))
    frames += [
        pika.frame.Body(number, body[i : i + step]).marshal() for i in range(0, len(body), step)
    ]
    return b"".join(frames)


def other_frame(number: int) -> bytes:
    """A frame that is not a delivery (a confirm): pika's to handle."""
    return pika.frame.Method(number, pika.spec.Basic.Ack(delivery_tag=7, multiple=True)).marshal()


def summary(log: list[object]) -> list[tuple[object, ...]]:
    """What a log says, comparable: deliveries by their fields, pika's frames by type."""
    out: list[tuple[object, ...]] = []
    for entry in log:
        assert isinstance(entry, tuple)
        if entry[0] == "delivered":
            _, number, method, properties, body = entry
            out.append(
                (
                    "delivered",
                    number,
                    method.consumer_tag,
                    method.delivery_tag,
                    method.redelivered,
                    method.routing_key,
                    properties.message_id,
                    properties.delivery_mode,
                    properties.headers,
                    body,
                )
            )
        else:
            value = entry[1]
            out.append(("pika", value.channel_number, type(getattr(value, "method", value))))
    return out


def test_deliveries_split_anywhere_reach_their_consumer_whole_and_in_order() -> None:
    """However the socket cuts the stream, each delivery reaches its consumer once,
    whole, and in order with the frames left to pika (a confirm, a heartbeat)."""
    stream = (
        deliver_frames(1, "c1", 1, b"x" * 300, body_frames=3)
        + other_frame(1)
        + deliver_frames(1, "c1", 2, b"")  # no body frame at all
        + pika.frame.Heartbeat().marshal()
        + deliver_frames(2, "c2", 3, b"on channel two")
    )
    expected: list[tuple[object, ...]] | None = None
    for cut in range(len(stream) + 1):
        log: list[object] = []
        connection = Recording(
            {1: consuming_channel(1, log, "c1"), 2: consuming_channel(2, log, "c2")}
        )
        connection.log = log
        connection._on_data_available(stream[:cut])
        connection._on_data_available(stream[cut:])
        got = summary(log)
        if expected is None:
            expected = got
        assert got == expected, f"cut at byte {cut}"
        assert connection._frame_buffer == b""
        assert connection.bytes_received == len(stream)
    assert expected is not None
    assert [e[0] for e in expected] == ["delivered", "pika", "delivered", "pika", "delivered"]
    first = expected[0]
    assert first[1:] == (1, "c1", 1, True, "q", "m1", 2, {"x-delivery-count": 3}, b"x" * 300)
    assert expected[2][-1] == b""
    assert expected[4][1:3] == (2, "c2")


def test_a_delivery_pika_treats_specially_is_left_to_pika() -> None:
    """A cancelled consumer's delivery (pika rejects it), an unknown consumer's (pika
    logs it) and one on an unknown channel go through pika, frame by frame."""
    log: list[object] = []
    channel = consuming_channel(1, log, "cancelled")
    channel._cancelled.add("cancelled")  # type: ignore[attr-defined]
    connection = Recording({1: channel})
    connection.log = log
    stream = (
        deliver_frames(1, "cancelled", 1, b"a")
        + deliver_frames(1, "unknown", 2, b"b")
        + deliver_frames(9, "c", 3, b"c")
    )
    connection._on_data_available(stream)
    assert [entry[0] for entry in summary(log)] == ["pika"] * 9
    assert connection.bytes_received == len(stream)


def plaintext_pair() -> tuple[Any, socket.socket, list[str]]:
    """pika's plaintext transport on one end of a socket pair; the other end; and the
    calls it made to its I/O loop."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    calls: list[str] = []
    nbio = SimpleNamespace(
        set_reader=lambda fd, handler: calls.append("set_reader"),
        set_writer=lambda fd, handler: calls.append("set_writer"),
        remove_writer=lambda fd: calls.append("remove_writer"),
    )
    protocol = SimpleNamespace(received=[])
    protocol.data_received = protocol.received.append  # type: ignore[attr-defined]
    transport = _AsyncPlaintextTransport(ours, protocol, nbio)  # type: ignore[arg-type]
    return transport, theirs, calls


@pytest.fixture
def pair() -> Iterator[tuple[Any, socket.socket, list[str]]]:
    transport, theirs, calls = plaintext_pair()
    yield transport, theirs, calls
    transport._sock.close()
    theirs.close()


def writer(transport: Any) -> WireConnection:
    connection = Recording({})
    connection._transport = transport
    connection._adapter_emit_data = transport.write  # as pika's BaseConnection does
    return connection


def test_a_write_with_nothing_queued_goes_to_the_socket_at_once(
    pair: tuple[Any, socket.socket, list[str]],
) -> None:
    transport, theirs, calls = pair
    writer(transport)._emit(b"frames")
    assert theirs.recv(100) == b"frames"
    assert calls == ["set_reader"]  # no turn of the loop to write it


def test_a_write_behind_queued_bytes_waits_its_turn(
    pair: tuple[Any, socket.socket, list[str]],
) -> None:
    """Once the socket takes only part of a write, later writes queue behind the rest
    (pika sends them when the socket is writable), so the stream stays in order."""
    transport, theirs, calls = pair
    connection = writer(transport)
    big = bytes(range(256)) * 40_000  # more than a socket pair's buffers hold
    connection._emit(big)
    assert transport.get_write_buffer_size() > 0
    assert calls == ["set_reader", "set_writer"]
    connection._emit(b"after")
    received = bytearray()
    while len(received) < len(big) + 5:
        chunk = theirs.recv(1 << 20)
        received += chunk
        if transport.get_write_buffer_size():
            transport._on_socket_writable()
    assert bytes(received) == big + b"after"


def test_reads_stop_after_a_read_that_did_not_fill_the_buffer(
    pair: tuple[Any, socket.socket, list[str]],
) -> None:
    """No read that can only fail with EAGAIN after a burst (level-triggered epoll
    calls again for bytes that come later); a full read is followed by another."""
    transport, theirs, _calls = pair
    theirs.sendall(b"a" * (RECV_BYTES + 10))
    assert wait_until(lambda: _pending(transport._sock) == RECV_BYTES + 10, timeout_s=5)
    _consume(transport)
    assert [len(data) for data in transport._protocol.received] == [RECV_BYTES, 10]
    theirs.sendall(b"b")
    assert wait_until(lambda: _pending(transport._sock) == 1, timeout_s=5)
    _consume(transport)  # one read of 1 byte, and no second one (which would raise)
    assert transport._protocol.received[-1] == b"b"
    theirs.close()
    with pytest.raises(_AsyncPlaintextTransport.RxEndOfFile):  # end of stream
        _consume(transport)


def _pending(sock: socket.socket) -> int:
    try:
        return len(sock.recv(RECV_BYTES * 2, socket.MSG_PEEK))
    except BlockingIOError:
        return 0


def test_the_loop_lock_is_free_only_while_the_loop_waits() -> None:
    """A thread that takes the lock has the connection to itself: the loop's callbacks
    run only while the loop holds it, and the loop gives it up while it waits."""
    ioloop = IOLoop()
    lock = lock_released_while_polling(ioloop)
    held_in_callbacks: list[bool] = []
    started = threading.Event()

    def run() -> None:
        lock.acquire()
        ioloop.add_callback_threadsafe(started.set)
        ioloop.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert started.wait(5)
        # Idle, the loop waits in epoll: the lock can be taken.
        assert wait_until(lambda: _try(lock), timeout_s=5)
        ran = threading.Event()

        def callback() -> None:
            held_in_callbacks.append(lock.locked())
            ran.set()

        ioloop.add_callback_threadsafe(callback)  # wakes the loop while we hold the lock
        assert not ran.wait(0.2)  # a negative: the loop waits for the lock meanwhile
        lock.release()
        assert ran.wait(5)
        assert held_in_callbacks == [True]
    finally:
        ioloop.add_callback_threadsafe(ioloop.stop)
        thread.join(5)
        ioloop.close()


def _try(lock: threading.Lock) -> bool:
    return lock.acquire(blocking=False)
