"""Reading Redis's replies (RESP2, and RESP3 where asked) straight off a socket.

Every connection of the plugin (:class:`petiole_redis._connection.Connection`)
reads its replies here. A general-purpose parser reads each element of a reply
through several layers (a socket buffer with a seek per line, an encoder call
per value), about 3 µs an element: a reserve of 64 messages replies with over
300 elements. This keeps one ``bytearray`` per connection and walks it with
``find`` and slices.

Replies come back as plain values: bulk and simple strings as ``bytes``,
integers as ``int``, arrays (and RESP3 sets) as ``list``, RESP3 maps as ``dict``,
nil as ``None``, RESP3 booleans and doubles as ``bool`` and ``float``. An error
reply becomes its exception (:func:`petiole_redis._errors.error_reply`:
``NOSCRIPT`` a :class:`~petiole_redis._errors.NoScriptError`, ...): raised when
it is the reply, returned in its place inside an array. A RESP3 push (client
tracking's invalidations) is handed to :attr:`ReplyReader.on_push` and skipped,
wherever it comes between replies. A socket that times out raises
:class:`~petiole_redis._errors.RedisTimeoutError` and one the server closed
:class:`~petiole_redis._errors.RedisConnectionError`; after either, or any other
error, the caller drops the connection (the reader is then out of step with it).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from petiole_redis._errors import (
    InvalidResponse,
    RedisConnectionError,
    RedisTimeoutError,
    ResponseError,
    error_reply,
)

# Bytes asked of the socket per read: most replies (a reserve of 64 small
# messages is ~20 KB) arrive in one.
_READ_SIZE = 65536
_CRLF = b"\r\n"
_DONT_WAIT = getattr(socket, "MSG_DONTWAIT", 0)  # 0 where there is none: no spinning
# Spinning for replies (ReplyReader.spin_s) stops for _REST_READS reads once
# _MISSES_TO_REST spins in a row found nothing.
_MISSES_TO_REST = 8
_REST_READS = 64
_BULK, _ARRAY, _INTEGER, _SIMPLE, _ERROR = b"$"[0], b"*"[0], b":"[0], b"+"[0], b"-"[0]
# RESP3 only (a connection that said HELLO 3).
_MAP, _SET, _PUSH, _NULL, _BOOLEAN = b"%"[0], b"~"[0], b">"[0], b"_"[0], b"#"[0]
_DOUBLE, _BIG_NUMBER, _VERBATIM, _BLOB_ERROR, _ATTRIBUTE = (
    b","[0],
    b"("[0],
    b"="[0],
    b"!"[0],
    b"|"[0],
)


def _ignore_push(push: list[Any]) -> None:
    pass


class ReplyReader:
    """The replies of one connection, in order (see the module docstring).

    ``parse_error`` turns an error reply's text into its exception; ``on_push``
    gets each RESP3 push.

    ``spin_s``: how long a read waits for bytes without sleeping (non-blocking
    reads in a loop) before it sleeps in the kernel. A local server answers most
    commands within tens of microseconds, and on a virtual machine sleeping and
    being woken from another CPU costs more than that: spinning then saves both
    time and CPU. A reader whose spins find nothing several times in a row (a
    server across a network) rests from spinning, trying again now and then; a
    read that waits for new messages spins in vain once per wait."""

    __slots__ = (
        "_buf",
        "_misses",
        "_parse_error",
        "_pos",
        "_rest",
        "on_push",
        "sock",
        "spin_s",
    )

    def __init__(
        self,
        sock: socket.socket,
        parse_error: Callable[[str], Exception] = error_reply,
        *,
        spin_s: float = 0.0,
    ) -> None:
        self.sock = sock
        self.spin_s = spin_s if _DONT_WAIT else 0.0
        self._misses = 0  # spins in a row that found nothing
        self._rest = 0  # reads left to make without spinning
        self._parse_error = parse_error
        self._buf = bytearray()
        self._pos = 0  # where the next unread reply byte is in _buf
        self.on_push: Callable[[list[Any]], None] = _ignore_push

    def read(self, *, push_request: bool = False) -> Any:
        """The next reply; raises it if it is an error reply. Pushes before it go
        to :attr:`on_push`; with ``push_request`` a push is the reply awaited: the
        first one is handed on and returned."""
        while True:
            value = self._value()
            if self._pos == len(self._buf):  # everything read was used: start afresh
                self._buf.clear()
                self._pos = 0
            if type(value) is _Push:
                self.on_push(value.items)
                if push_request:
                    return value.items
                continue
            if isinstance(value, ResponseError):
                raise value
            return value

    @property
    def spinning(self) -> bool:
        """Whether the next read from the socket spins first (see the class docstring)."""
        return bool(self.spin_s) and not self._rest

    def buffered(self) -> bool:
        """Whether bytes of a reply already read from the socket wait here."""
        return self._pos < len(self._buf)

    def _value(self) -> Any:
        line = self._line()
        kind = line[0]
        if kind == _BULK:
            size = int(line[1:])
            return None if size < 0 else self._bulk(size)
        if kind in (_ARRAY, _SET):
            count = int(line[1:])
            return None if count < 0 else self._array(count)
        if kind == _INTEGER:
            return int(line[1:])
        if kind == _SIMPLE:
            return line[1:]
        if kind == _ERROR:
            return self._error(line[1:].decode(errors="replace"))
        return self._resp3_value(kind, line)

    def _resp3_value(self, kind: int, line: bytes) -> Any:
        if kind == _MAP:
            flat = self._array(2 * int(line[1:]))
            return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
        if kind == _PUSH:
            return _Push(self._array(int(line[1:])))
        if kind == _NULL:
            return None
        if kind == _BOOLEAN:
            return line[1:] == b"t"
        if kind == _DOUBLE:
            return float(line[1:])
        if kind == _BIG_NUMBER:
            return int(line[1:])
        if kind == _VERBATIM:
            return self._bulk(int(line[1:]))[4:]  # "txt:" or "mkd:" first
        if kind == _BLOB_ERROR:
            return self._error(self._bulk(int(line[1:])).decode(errors="replace"))
        if kind == _ATTRIBUTE:  # metadata about the reply that follows: not kept
            self._array(2 * int(line[1:]))
            return self._value()
        raise InvalidResponse(f"Protocol Error: {line[:100]!r}")

    def _error(self, message: str) -> Exception:
        error = self._parse_error(message)
        if isinstance(error, RedisConnectionError):
            raise error
        return error

    def _array(self, count: int) -> list[Any]:
        """The ``count`` elements of an array. Its bulk strings and integers (a
        reserve's messages, an MGET's values) are read in this loop, without a
        call each, and nested arrays by a call of their own; anything else, or an
        element not wholly in the buffer yet, goes through :meth:`_value`."""
        items: list[Any] = []
        append = items.append
        buf = self._buf
        pos = self._pos
        for _ in range(count):
            end = buf.find(_CRLF, pos)
            if end > pos:
                kind = buf[pos]
                if kind == _BULK:
                    size = int(buf[pos + 1 : end])
                    start = end + 2
                    stop = start + size
                    if size >= 0 and stop + 2 <= len(buf):
                        append(bytes(buf[start:stop]))
                        pos = stop + 2
                        continue
                elif kind == _INTEGER:
                    append(int(buf[pos + 1 : end]))
                    pos = end + 2
                    continue
                elif kind == _ARRAY:  # nested (a stream's entries): no line read again
                    nested = int(buf[pos + 1 : end])
                    self._pos = end + 2
                    append(self._array(nested) if nested >= 0 else None)
                    buf = self._buf  # the nested array may have read more
                    pos = self._pos
                    continue
            self._pos = pos
            append(self._value())
            buf = self._buf  # _value may have read more, and moved what is left to the front
            pos = self._pos
        self._pos = pos
        return items

    def _line(self) -> bytes:
        """The next line, without its CRLF."""
        end = self._buf.find(_CRLF, self._pos)
        while end < 0:
            self._fill()
            end = self._buf.find(_CRLF, self._pos)
        line = bytes(self._buf[self._pos : end])
        self._pos = end + 2
        return line

    def _bulk(self, size: int) -> bytes:
        """The next ``size`` bytes, and the CRLF after them."""
        while len(self._buf) - self._pos < size + 2:
            self._fill()
        start = self._pos
        self._pos = start + size + 2
        return bytes(self._buf[start : start + size])

    def _fill(self) -> None:
        """Read more from the socket, first dropping what was already used."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        try:
            chunk = self._recv_soon() if self.spin_s else None
            if chunk is None:
                chunk = self.sock.recv(_READ_SIZE)  # sleeps until bytes come
        except (TimeoutError, BlockingIOError) as exc:  # Python's timeout, the kernel's
            raise RedisTimeoutError("Timeout reading from socket") from exc
        except OSError as exc:
            raise RedisConnectionError(f"Error while reading from socket: {exc}") from exc
        if not chunk:
            raise RedisConnectionError("Connection closed by server.")
        self._buf += chunk

    def _recv_soon(self) -> bytes | None:
        """What arrives within ``spin_s``, read without sleeping; None if nothing
        did, or while resting after :data:`_MISSES_TO_REST` spins in a row found
        nothing (for :data:`_REST_READS` reads)."""
        if self._rest:
            self._rest -= 1
            return None
        recv = self.sock.recv
        deadline = time.perf_counter() + self.spin_s
        while True:
            try:
                chunk = recv(_READ_SIZE, _DONT_WAIT)
            except BlockingIOError:
                if time.perf_counter() < deadline:
                    continue
                self._misses += 1
                if self._misses == _MISSES_TO_REST:
                    self._misses, self._rest = 0, _REST_READS
                return None
            self._misses = 0
            return chunk


class _Push:
    """A RESP3 push, told apart from an array reply."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items
