"""A publish whose reply is lost on the way back is resent, and stored once.

The fault is caused for real: the transport talks to a real server through a TCP
relay on 127.0.0.1 that, once armed, forwards a request carrying a marker and
then closes the connection instead of relaying the server's reply. The server
stored the message; the client saw its connection drop and sends it again. The
relay can drop the request instead: then the resend must store it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from petiole_redis.testing import RedisServer
from petiole_redis.transport import create_transport

from petiole.testing import unique_name
from petiole.transport import Transport

LAYOUTS = {"lists": "?layout=lists", "streams": ""}
MARKER = b"lost-reply-marker"


class ReplyDroppingRelay:
    """Relays TCP connections to ``target``; once :meth:`arm` is called, the first
    request holding :data:`MARKER` reaches the server but its reply does not reach
    the client: the relay closes both sides when the reply arrives. Armed with
    ``request=True``, the relay closes both sides instead of forwarding it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._armed = threading.Event()
        self._drop_request = False
        self.dropped = threading.Event()  # a request or reply was dropped
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, *, request: bool = False) -> None:
        self._drop_request = request
        self._armed.set()

    def close(self) -> None:
        self._listener.close()
        _cut(*self._sockets)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(self._target)
            self._sockets += [client, server]
            dropping = threading.Event()
            threading.Thread(target=self._requests, args=(client, server, dropping)).start()
            threading.Thread(target=self._replies, args=(server, client, dropping)).start()

    def _requests(
        self, client: socket.socket, server: socket.socket, dropping: threading.Event
    ) -> None:
        while data := _recv(client):
            if MARKER in data and self._armed.is_set():
                self._armed.clear()
                if self._drop_request:
                    _cut(client, server)
                    self.dropped.set()
                    return
                dropping.set()  # before the server can answer
            try:
                server.sendall(data)
            except OSError:
                return

    def _replies(
        self, server: socket.socket, client: socket.socket, dropping: threading.Event
    ) -> None:
        while data := _recv(server):
            if dropping.is_set():
                _cut(client, server)
                self.dropped.set()
                return
            try:
                client.sendall(data)
            except OSError:
                return


def _cut(*sockets: socket.socket) -> None:
    """Close at once: shut down first, as a close alone waits for the other
    thread's pending ``recv`` on the socket before the peer sees the end."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@pytest.fixture
def relay(redis_server: RedisServer) -> Iterator[ReplyDroppingRelay]:
    relay = ReplyDroppingRelay(("127.0.0.1", redis_server.port))
    yield relay
    relay.close()


@pytest.fixture(params=sorted(LAYOUTS))
def relayed(request: pytest.FixtureRequest, relay: ReplyDroppingRelay) -> Iterator[Transport]:
    transport = create_transport(f"redis://127.0.0.1:{relay.port}/0{LAYOUTS[request.param]}", {})
    yield transport
    transport.close()


def _drain(transport: Transport, queue: str) -> list[bytes]:
    got = transport.reserve([queue], max_messages=100, wait_s=0, lease_s=60)
    transport.ack_many(got)
    return [d.payload for d in got]


@pytest.mark.parametrize("priority", [0, 5])
def test_a_publish_whose_reply_was_lost_is_stored_once(
    relayed: Transport, relay: ReplyDroppingRelay, priority: int
) -> None:
    queue = unique_name()
    relayed.publish(queue, b"before", priority=priority)  # loads a script it may need
    relay.arm()

    relayed.publish(queue, MARKER, priority=priority)

    assert relay.dropped.is_set()  # the fault happened: the server answered, unheard
    relayed.publish(queue, b"after")
    assert sorted(_drain(relayed, queue)) == sorted([b"before", MARKER, b"after"])


def test_a_batch_whose_replies_were_lost_stores_each_message_once(
    relayed: Transport, relay: ReplyDroppingRelay
) -> None:
    queue = unique_name()
    payloads = [b"m%d" % i for i in range(50)] + [MARKER]
    relay.arm()

    relayed.publish_many(queue, payloads)

    assert relay.dropped.is_set()
    assert sorted(_drain(relayed, queue)) == sorted(payloads)


def test_a_resend_stores_the_message_when_the_first_sending_never_arrived(
    relayed: Transport, relay: ReplyDroppingRelay
) -> None:
    # The other half of the bargain: looking for the first sending must not
    # swallow a message that was never stored.
    queue = unique_name()
    relayed.publish(queue, b"before")
    relay.arm(request=True)

    relayed.publish(queue, MARKER)

    assert relay.dropped.is_set()
    assert sorted(_drain(relayed, queue)) == sorted([b"before", MARKER])
