"""One connection to a Redis server, speaking the protocol itself.

The plugin needs a small part of a Redis client: send commands (packed by
:func:`pack`), read replies (:class:`~petiole_redis._replies.ReplyReader`),
connect over TCP, TLS or a Unix socket, authenticate and pick the database.
Doing that here rather than through redis-py keeps a worker process about 20 MB
smaller (redis-py's import brings asyncio, its cluster and command modules and
more, in every process) and the hot path free of a general client's layers; it
also leaves the plugin relying on nothing private of another library.

A :class:`Connection` connects lazily (its first command) and runs the handshake
in one round trip (``HELLO 3`` for RESP3, else ``AUTH`` and ``SELECT``), or the
``on_connect`` hook, which runs it and then its own checks (the connector's
lost-data check, a tracking connection's ``CLIENT TRACKING ON``). Any error other than
an error reply leaves it disconnected: the next command connects afresh. It is
not thread-safe; the connector gives each thread its own or pools them.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from petiole_redis._errors import (
    AuthenticationError,
    CertificateError,
    DataError,
    HostNotFound,
    RedisConnectionError,
    RedisTimeoutError,
    ResponseError,
    raise_first_error,
)
from petiole_redis._replies import ReplyReader

if TYPE_CHECKING:
    import ssl

    from petiole_redis._options import RedisTarget


@dataclass(frozen=True, slots=True)
class Address:
    """Where and how to connect, from a URL and the component's options."""

    host: str = "localhost"
    port: int = 6379
    path: str = ""  # a Unix socket's; then host and port are unused
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    connect_timeout_s: float | None = 5.0
    socket_timeout_s: float | None = 30.0
    reply_spin_s: float = 0.0  # see ReplyReader; 0 with TLS, whose reads cannot skip sleeping
    ssl_ca_certs: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_cert_reqs: str = "required"
    ssl_check_hostname: bool = True

    @property
    def describe(self) -> str:
        if self.path:
            return self.path
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def address_of(target: RedisTarget) -> Address:
    """The :class:`Address` of a parsed URL (checked by ``parse_url`` already):
    ``redis[s]://[[user]:password@]host[:port][/db]`` or
    ``unix://[[user]:password@]/path[?db=N]``; user and password percent-decoded."""
    parts = urlsplit(target.client_url)
    opts = target.options
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    common: dict[str, Any] = {
        "username": username,
        "password": password,
        "connect_timeout_s": opts.connect_timeout_s,
        "socket_timeout_s": opts.socket_timeout_s,
    }
    if parts.scheme == "unix":
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return Address(
            path=unquote(parts.path),
            db=int(db or 0),
            reply_spin_s=opts.reply_spin_us / 1e6,
            **common,
        )
    db_path = parts.path.lstrip("/")
    return Address(
        host=parts.hostname or "localhost",
        port=parts.port or 6379,
        db=int(db_path) if db_path else 0,
        tls=parts.scheme == "rediss",
        reply_spin_s=0.0 if parts.scheme == "rediss" else opts.reply_spin_us / 1e6,
        ssl_ca_certs=opts.ssl_ca_certs,
        ssl_certfile=opts.ssl_certfile,
        ssl_keyfile=opts.ssl_keyfile,
        ssl_cert_reqs=opts.ssl_cert_reqs,
        ssl_check_hostname=opts.ssl_check_hostname,
        **common,
    )


def pack(args: Sequence[Any]) -> bytes:
    """One command in the Redis protocol (RESP), each argument encoded as bytes
    (as is), str (UTF-8), int and float (``repr``); anything else, a bool
    included, is a :class:`~petiole_redis._errors.DataError`."""
    out = bytearray(b"*%d\r\n" % len(args))
    for arg in args:
        kind = type(arg)  # exact types first: the common ones, without isinstance chains
        if kind is bytes:
            data = arg
        elif kind is str:
            data = arg.encode()
        elif kind is int:
            data = b"%d" % arg
        else:
            data = _encode_other(arg)
        out += b"$%d\r\n" % len(data)
        out += data
        out += b"\r\n"
    return bytes(out)


def _encode_other(arg: Any) -> bytes:
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return bytes(arg)
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        return repr(arg).encode()
    raise DataError(
        f"Invalid input of type: {type(arg).__name__!r}. "
        "Convert to a bytes, string, int or float first."
    )


class Connection:
    """One socket to the server and the reader of its replies (see the module docstring)."""

    def __init__(
        self,
        address: Address,
        *,
        protocol: int = 2,
        on_connect: Callable[[Connection], None] | None = None,
    ) -> None:
        self.address = address
        self.protocol = protocol
        self.on_connect = on_connect
        self.on_push: Callable[[list[Any]], None] | None = None  # RESP3 pushes, as they come
        self._sock: socket.socket | None = None
        self._reader: ReplyReader | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        """Connect, unless connected: socket, handshake, then the ``on_connect`` hook."""
        if self._sock is not None:
            return
        sock = self._open_socket()
        self._sock = sock
        self._reader = ReplyReader(sock, spin_s=self.address.reply_spin_s)
        if self.on_push is not None:
            self._reader.on_push = self.on_push
        try:
            if self.on_connect is not None:
                self.on_connect(self)  # which runs handshake() first
            else:
                self.handshake()
        except RedisConnectionError as exc:
            self.disconnect()
            raise _first_exchange_failed(exc, self.address) from exc.__cause__
        except BaseException:
            self.disconnect()
            raise

    def _open_socket(self) -> socket.socket:
        address = self.address
        try:
            if address.path:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(address.connect_timeout_s)
                    sock.connect(address.path)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection(
                    (address.host, address.port), timeout=address.connect_timeout_s
                )
                try:
                    # One command per packet, sent at once: latency is what a
                    # task queue's round trips are made of.
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                    if address.tls:
                        sock = _tls_wrap(sock, address)
                except BaseException:
                    sock.close()
                    raise
            if address.reply_spin_s:  # spinning reads need a socket that blocks
                _kernel_timeouts(sock, address.socket_timeout_s)
            else:
                sock.settimeout(address.socket_timeout_s)
            return sock
        except TimeoutError as exc:  # before OSError: it is one
            raise RedisTimeoutError(f"Timeout connecting to {address.describe}") from exc
        except socket.gaierror as exc:  # before OSError: it is one
            raise HostNotFound(
                f"Error connecting to {address.describe}: {exc} (the host name "
                f"{address.host!r} does not resolve: check the URL's host)"
            ) from exc
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to {address.describe}: {exc}") from exc

    def handshake(self) -> None:
        """Say the protocol, authenticate, select the database (one round trip);
        an ``on_connect`` hook calls it first."""
        address = self.address
        commands: list[tuple[Any, ...]] = []
        password, user = address.password, address.username
        if self.protocol == 3:
            auth = () if password is None else ("AUTH", user or "default", password)
            commands.append(("HELLO", 3, *auth))
        elif password is not None:
            # AUTH with one argument where no user is named: servers before 6 know no other.
            commands.append(("AUTH", user, password) if user else ("AUTH", password))
        if address.db:
            commands.append(("SELECT", address.db))
        if commands:
            raise_first_error(self.pipeline(commands))

    # -- commands ------------------------------------------------------------------------

    def send_packed_command(self, data: bytes) -> None:
        """Send bytes already packed (one command or several)."""
        self.connect()
        sock = self._sock
        if sock is None:  # closed by another thread (the component's close) meanwhile
            raise RedisConnectionError("Connection closed.")
        try:
            sock.sendall(data)
        except (TimeoutError, BlockingIOError) as exc:  # Python's timeout, the kernel's
            self.disconnect()
            raise RedisTimeoutError("Timeout writing to socket") from exc
        except OSError as exc:
            self.disconnect()
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            self.disconnect()
            raise

    def send_command(self, *args: Any) -> None:
        self.send_packed_command(pack(args))

    def read_response(self, *, push_request: bool = False) -> Any:
        """The next reply (raised if it is an error reply); see :meth:`ReplyReader.read`."""
        reader = self._reader
        if reader is None:
            raise RedisConnectionError("Connection closed.")
        try:
            return reader.read(push_request=push_request)
        except ResponseError:
            raise  # the server answered: the connection is fine
        except BaseException:
            self.disconnect()
            raise

    def command(self, *args: Any) -> Any:
        """Send one command and read its reply."""
        self.send_packed_command(pack(args))
        return self.read_response()

    def pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send every command, then read every reply (one round trip). A reply
        error is returned in its place, not raised."""
        self.send_packed_command(b"".join(map(pack, commands)))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(self.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies

    def transaction(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """The commands in one ``MULTI`` / ``EXEC`` (one round trip): their replies,
        an error reply in its place. A command the server refused to queue aborts
        the whole transaction: its error is raised."""
        replies = raise_first_error(self.pipeline([("MULTI",), *commands, ("EXEC",)]))
        return list(replies[-1])

    def can_read(self, timeout: float | None = 0) -> bool:
        """Whether a reply (or push) is there to read, waiting up to ``timeout``
        seconds (None: no limit). Connects first if not connected."""
        self.connect()
        sock, reader = self._sock, self._reader
        if sock is None or reader is None:  # closed by another thread meanwhile
            raise RedisConnectionError("Connection closed.")
        if reader.buffered() or _tls_pending(sock):
            return True
        try:
            readable, _, _ = select.select([sock], [], [], timeout)
        except (OSError, ValueError) as exc:
            self.disconnect()
            raise RedisConnectionError(f"Error while waiting on socket: {exc}") from exc
        return bool(readable)

    def disconnect(self) -> None:
        """Close the socket (idempotent); the next command connects again."""
        sock, self._sock, self._reader = self._sock, None, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading it
        sock.close()


def _kernel_timeouts(sock: socket.socket, seconds: float | None) -> None:
    """Make ``sock`` blocking, its send and receive timeouts kept by the kernel
    (``SO_SNDTIMEO`` / ``SO_RCVTIMEO``; a call that times out raises
    :class:`BlockingIOError`). A Python timeout (``settimeout``) polls the socket,
    up to the timeout, before every send and every receive, a non-blocking one
    too: a reply could not be spun for (:class:`ReplyReader`). A connection that
    does not spin keeps Python's timeouts: measured without spinning, the round
    trip of a task and its result was about 0.05 ms slower on blocking sockets."""
    sock.settimeout(None)
    if seconds is None:
        return
    whole = int(seconds)
    timeval = struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def _tls_pending(sock: socket.socket) -> bool:
    """Bytes TLS already decrypted and holds (select cannot see them)."""
    pending = getattr(sock, "pending", None)
    return bool(pending()) if pending is not None else False


def _tls_wrap(sock: socket.socket, address: Address) -> ssl.SSLSocket:
    """``sock`` with TLS on, the server's certificate checked as the options say.
    A certificate that fails the check is no outage: retrying cannot fix it."""
    import ssl  # only for rediss://: the module and OpenSSL cost a process 6 MB

    try:
        return _tls_context(address).wrap_socket(sock, server_hostname=address.host)
    except ssl.SSLCertVerificationError as exc:
        if exc.verify_code in _NAME_MISMATCH:
            hint = (
                f"connect with a name the certificate has, or set ssl_check_hostname=false "
                f"to accept it for {address.host}"
            )
        else:
            hint = "set ssl_ca_certs to the CA that signed it"
        raise CertificateError(
            f"the certificate of {address.describe} failed verification: "
            f"{exc.verify_message} ({hint})"
        ) from exc


# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH: the
# certificate is trusted but names another host.
_NAME_MISMATCH = (62, 64)


def _first_exchange_failed(exc: RedisConnectionError, address: Address) -> RedisConnectionError:
    """What a connection lost during its first exchange (the handshake, or the
    hook's first command) most likely means. Over TLS, an error of the TLS layer
    there is the server refusing this client's certificate (TLS 1.3 sends that
    alert after the handshake, so it arrives with the first reply, or as the
    connection ending under the first write): retrying cannot fix it. Over plain
    TCP, a server speaking TLS ends the connection at once: say so."""
    if isinstance(exc, (AuthenticationError, CertificateError)):
        return exc
    if address.tls:
        import ssl  # loaded already: the connection speaks TLS

        if isinstance(exc.__cause__, ssl.SSLError):
            return CertificateError(
                f"{address.describe} ended the TLS session at once ({exc.__cause__}): it "
                "wants a client certificate (ssl_certfile, ssl_keyfile) it trusts"
            )
        return exc
    if isinstance(exc.__cause__, ConnectionResetError) or "closed by server" in str(exc):
        return type(exc)(f"{exc} (if the server speaks TLS, use a rediss:// URL)")
    return exc


def _tls_context(address: Address) -> ssl.SSLContext:
    import ssl

    context = ssl.create_default_context(cafile=address.ssl_ca_certs or None)
    if address.ssl_cert_reqs == "none":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = address.ssl_check_hostname
        context.verify_mode = (
            ssl.CERT_OPTIONAL if address.ssl_cert_reqs == "optional" else ssl.CERT_REQUIRED
        )
    if address.ssl_certfile:
        context.load_cert_chain(address.ssl_certfile, address.ssl_keyfile or None)
    return context
