"""Reading Redis's replies (RESP2) straight off a connection's socket.

The hot path (:class:`petiole_redis._client.FastClient`) reads its replies here
instead of through redis-py's parser. redis-py reads each element of a reply
through several layers (a socket buffer with a seek per line, an encoder call
per value), about 3 µs an element: a reserve of 64 messages replies with over
300 elements, and parsing them was a fifth of a worker's CPU. This keeps one
``bytearray`` per connection and walks it with ``find`` and slices.

Replies come back as redis-py's parser returns them with ``decode_responses``
off: bulk and simple strings as ``bytes``, integers as ``int``, arrays as
``list``, nil as ``None``. An error reply becomes the exception redis-py's
parser makes of it (``NOSCRIPT`` a :class:`~redis.exceptions.NoScriptError`,
``LOADING`` a :class:`~redis.exceptions.BusyLoadingError`, ...): raised when it
is the reply, returned in its place inside an array. A socket that times out
raises :class:`redis.TimeoutError` and one the server closed
:class:`redis.ConnectionError`, so the outage policy sees what it sees from
redis-py; after either, or any other error, the caller drops the connection
(the reader is then out of step with it).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from redis import exceptions as redis_errors

# Bytes asked of the socket per read: most replies (a reserve of 64 small
# messages is ~20 KB) arrive in one.
_READ_SIZE = 65536
_CRLF = b"\r\n"
_BULK, _ARRAY, _INTEGER, _SIMPLE, _ERROR = b"$"[0], b"*"[0], b":"[0], b"+"[0], b"-"[0]


class ReplyReader:
    """The replies of one connection, in order (see the module docstring).

    ``parse_error`` turns an error reply's text into its exception (redis-py's
    parser's ``parse_error``, so both agree on the types)."""

    __slots__ = ("_buf", "_parse_error", "_pos", "sock")

    def __init__(self, sock: socket.socket, parse_error: Callable[[str], Exception]) -> None:
        self.sock = sock
        self._parse_error = parse_error
        self._buf = bytearray()
        self._pos = 0  # where the next unread reply byte is in _buf

    def read(self) -> Any:
        """The next reply; raises it if it is an error reply."""
        value = self._value()
        if self._pos == len(self._buf):  # everything read was used: start the buffer afresh
            self._buf.clear()
            self._pos = 0
        if isinstance(value, redis_errors.ResponseError):
            raise value
        return value

    def _value(self) -> Any:
        line = self._line()
        kind = line[0]
        if kind == _BULK:
            size = int(line[1:])
            return None if size < 0 else self._bulk(size)
        if kind == _ARRAY:
            count = int(line[1:])
            return None if count < 0 else self._array(count)
        if kind == _INTEGER:
            return int(line[1:])
        if kind == _SIMPLE:
            return line[1:]
        if kind == _ERROR:
            error = self._parse_error(line[1:].decode(errors="replace"))
            if isinstance(error, redis_errors.ConnectionError):
                raise error
            return error
        raise redis_errors.InvalidResponse(f"Protocol Error: {line[:100]!r}")

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
            chunk = self.sock.recv(_READ_SIZE)
        except TimeoutError as exc:  # before OSError: it is one
            raise redis_errors.TimeoutError("Timeout reading from socket") from exc
        except OSError as exc:
            raise redis_errors.ConnectionError(f"Error while reading from socket: {exc}") from exc
        if not chunk:
            raise redis_errors.ConnectionError("Connection closed by server.")
        self._buf += chunk
