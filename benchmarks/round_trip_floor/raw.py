"""The floor's own worker and producer: the least one round trip can cost here.

No task queue: Redis commands written by hand over plain sockets. The worker
blocks in ``XREADGROUP`` and answers each entry with ``SET`` + ``PUBLISH`` (one
write, both replies read), acknowledging it with the next read, as Petiole's worker
does; the producer ``XADD``s (waiting for the reply) and waits for the ``PUBLISH``
on a subscribed connection, as Petiole's ``delay(i).get()`` does. What is left
is the operating system's and redis-server's share of a round trip: three
processes, two connections' wake-ups each way.

    python raw.py worker       (until killed)
    python raw.py produce N    (one JSON line: latencies, CPU)

Both connect to ``BENCH_REDIS_URL`` and make the stream's consumer group if it is
not there yet, so either may start first.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from systemkit import redis_url

STREAM, GROUP, CHANNEL = b"floor:stream", b"floor", b"floor:done"
WARMUP = 200


def pack(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class Replies:
    """Just enough RESP to read these commands' replies: bulk strings, integers,
    simple strings and arrays of them."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self) -> object:
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) < size + 2:
                self.buf += self.sock.recv(65536)
            value, self.buf = self.buf[:size], self.buf[size + 2 :]
            return value
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest


def connect() -> tuple[socket.socket, Replies]:
    """A connection to the benchmark's server, with the consumer group made."""
    parts = urlsplit(redis_url())
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    replies = Replies(sock)
    sock.sendall(pack(b"XGROUP", b"CREATE", STREAM, GROUP, b"$", b"MKSTREAM"))
    try:
        replies.read()
    except RuntimeError as exc:
        if not str(exc).startswith("BUSYGROUP"):  # made already: by the other side
            raise
    return sock, replies


READ = pack(
    b"XREADGROUP", b"GROUP", GROUP, b"c", b"COUNT", b"16", b"BLOCK", b"0", b"STREAMS", STREAM, b">"
)


def worker() -> None:
    sock, replies = connect()
    ack = b""
    while True:
        sock.sendall(ack + READ)
        if ack:
            replies.read()
        ((_, entries),) = replies.read()  # type: ignore[misc]
        ids = []
        for entry_id, (_, value) in entries:
            sock.sendall(
                pack(b"SET", b"floor:r:" + value, value) + pack(b"PUBLISH", CHANNEL, value)
            )
            replies.read(), replies.read()
            ids.append(entry_id)
        ack = pack(b"XACK", STREAM, GROUP, *ids)


def produce(n: int) -> None:
    commands, replies = connect()
    listener, pushed = connect()
    listener.sendall(pack(b"SUBSCRIBE", CHANNEL))
    pushed.read()

    def round_trip(i: int) -> int:
        commands.sendall(pack(b"XADD", STREAM, b"*", b"v", b"%d" % i))
        replies.read()
        _, _, got = pushed.read()  # type: ignore[misc]
        return int(got)  # type: ignore[call-overload]

    time_round_trips(round_trip, n)


def time_round_trips(round_trip: Callable[[int], Any], n: int) -> None:
    """``WARMUP`` untimed round trips, then ``n`` timed ones: print their times and
    the CPU this process spent on the timed ones, as one JSON line."""
    latencies = []
    cpu = 0.0
    for i in range(-WARMUP, n):
        if i == 0:
            cpu = time.process_time()
        started = time.perf_counter()
        got = round_trip(i)
        if got != i:
            raise SystemExit(f"wrong result: expected {i!r}, got {got!r}")
        if i >= 0:
            latencies.append(time.perf_counter() - started)
    print(json.dumps({"latencies_s": latencies, "cpu_s": time.process_time() - cpu}))


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        worker()
    else:
        produce(int(sys.argv[2]))
