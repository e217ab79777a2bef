"""Reads that the server answers again when what they read changes.

The result backend waits for results this way (see :mod:`petiole_redis.results`).
Each waiting thread keeps one connection that speaks RESP3 with ``CLIENT TRACKING
ON``: the server remembers every key this connection read, a missing key included,
and the next time anything writes or deletes one of them it pushes an
``invalidate`` message naming it (once per read: a new read arms it again). A
waiter reads the keys it waits for, then blocks on its own socket until the
server names some of them, and reads those again. So a waiter is woken by the
plain ``SET`` that stores a result, whoever waits for it (its sender, another
process, nobody); nothing is subscribed per wait, nothing is polled, and no
thread hands a reply to another.

A waiter may also receive what it waits for: the connection subscribes to a
channel of its own once, when it connects (:meth:`TrackingClient.listening_channel`),
and the store of a record addressed there publishes it right after its ``SET``
(see :mod:`petiole_redis.results`); the waiter, woken by both, takes the record
(:meth:`TrackingClient.take_pushed`) instead of reading the key again.

What resets the server's memory of the reads resets the waiter too: after its
connection is replaced (an outage, a restart), :meth:`TrackingClient.changed`
answers :data:`EVERYTHING`, and the waiter reads all its keys again, which arms
them on the new connection. A flush of the database is announced the same way.

A server (or a proxy in front of it) that refuses RESP3 or ``CLIENT TRACKING``
(Redis before 6, an ACL without ``client``) cannot wake a waiter: there, reads
are plain and :meth:`TrackingClient.changed` waits a growing pause (1 ms doubling
up to 100 ms) and answers :data:`EVERYTHING`, so waits poll. One WARNING says so.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from functools import partial
from typing import Any, Final

from petiole.ids import current_pid
from petiole_redis._client import Connector
from petiole_redis._connection import Connection
from petiole_redis._errors import ResponseError, raise_first_error

logger = logging.getLogger("petiole_redis")


class _Everything:
    def __repr__(self) -> str:
        return "EVERYTHING"


#: :meth:`TrackingClient.changed`'s answer when any key read may have changed.
EVERYTHING: Final = _Everything()

# Keys per MGET; several MGETs still go in one pipelined round trip.
_MGET_CHUNK = 1000
# The polling of a server that cannot track: the first pause and the longest.
_POLL_FIRST_S = 0.001
_POLL_MAX_S = 0.1


class TrackingClient:
    """Tracked reads on the calling thread's own RESP3 connection (see the module
    docstring). Calls go through the connector's retry policy like any other."""

    def __init__(self, connector: Connector, *, channel_prefix: str = "") -> None:
        self._connector = connector
        # Each thread's connection subscribes to a channel of its own under this
        # prefix (none when empty): see listening_channel().
        self._channel_prefix = channel_prefix
        self._local = threading.local()
        self._lock = threading.Lock()
        #: False once a server refused tracking: reads are plain, waits poll.
        self.tracks = True

    def start_wait(self, keys: Sequence[bytes]) -> bool:
        """A new wait for ``keys`` begins on this thread: polling (if it must)
        starts fast again, and the next task it sends will have its result pushed
        (see :meth:`listening_channel`). True when the wait is for the one key
        last addressed here, to the channel this connection still listens on:
        its record comes pushed (perhaps already), so reading it can wait."""
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is None:
            return False
        state.poll_s = _POLL_FIRST_S
        state.expects_push = True
        state.pushed.clear()  # pushes taken by an earlier wait's reads, not waited for
        addressed, state.addressed = state.addressed, None
        return (
            addressed is not None
            and list(keys) == [addressed[0]]
            and addressed[1] == state.channel
            and state.connection.connected
        )

    def read(self, keys: Sequence[bytes]) -> list[Any]:
        """The values of ``keys`` (None where missing), in one round trip; each
        key is tracked from now on."""
        try:
            return self._read(keys)
        except _RefusedTracking:
            return self._read(keys)  # again, on a plain connection

    def changed(self, timeout_s: float) -> frozenset[bytes] | _Everything | None:
        """Block until the server names keys read on this thread's connection as
        changed (returns them), or :data:`EVERYTHING` may have changed, or
        ``timeout_s`` passes (returns None)."""
        try:
            return self._changed(max(timeout_s, 0.0))
        except _RefusedTracking:
            return EVERYTHING  # a plain connection now: read everything again

    def listening_channel(self, key: bytes) -> str | None:
        """The channel this thread's connection is subscribed to, where the
        record stored at ``key`` is pushed to it (:meth:`take_pushed`), for the
        first call after each wait; None otherwise, and while it has none (before
        its first read, while disconnected, where the server refuses).

        So a thread that waits for each task it sends (a request handler, a
        script) has each result pushed, and one that sends a burst gets one push
        at most: a push it does not wait for at once costs it a wake-up and the
        bytes on its socket, more than reading the result when it waits."""
        state: _ThreadState | None = getattr(self._local, "state", None)
        if (
            state is None
            or not state.expects_push
            or state.channel is None
            or state.pid != current_pid()
            or not state.connection.connected
        ):
            return None
        state.expects_push = False
        state.addressed = (key, state.channel)
        return state.channel

    def take_pushed(self) -> dict[bytes, bytes]:
        """The records pushed to this thread's channel since the last call: key -> value
        (read from the socket with whatever else the server sent)."""
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is None or not state.pushed:
            return {}
        pushed, state.pushed = state.pushed, {}
        return pushed

    def _read(self, keys: Sequence[bytes]) -> list[Any]:
        state = self._state()
        connection = state.connection
        chunks = [keys[at : at + _MGET_CHUNK] for at in range(0, len(keys), _MGET_CHUNK)]
        # (A connection that fails disconnects itself; an error reply leaves it in step.)
        replies = raise_first_error(connection.pipeline([("MGET", *chunk) for chunk in chunks]))
        state.fresh = False
        return [value for reply in replies for value in reply]

    def _changed(self, timeout_s: float) -> frozenset[bytes] | _Everything | None:
        state = self._state()
        if not self.tracks:
            time.sleep(min(state.poll_s, timeout_s))
            state.poll_s = min(state.poll_s * 2, _POLL_MAX_S)
            return EVERYTHING
        connection = state.connection
        try:
            connection.connect()  # one closed meanwhile connects again, and is fresh
            # Names pushed while a read was being answered were noted then.
            if not state.fresh and not state.changed and not state.everything:
                if not connection.can_read(timeout=timeout_s):
                    return None
                connection.read_response(push_request=True)  # noted by the handler
            while connection.can_read(timeout=0):  # more already here: take them too
                connection.read_response(push_request=True)
        except BaseException:
            connection.disconnect()
            raise
        return state.take_changes()

    def _state(self) -> _ThreadState:
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is None or state.pid != current_pid() or state.tracks != self.tracks:
            if state is not None and state.pid == current_pid():
                state.connection.disconnect()  # a tracking one, refused meanwhile
            state = _ThreadState(tracks=self.tracks)
            state.connection = self._new_connection(state)
            self._local.state = state
        return state

    def _new_connection(self, state: _ThreadState) -> Connection:
        connector = self._connector
        connection = connector.new_connection(
            protocol=3 if state.tracks else 2, on_connect=partial(self._on_connect, state)
        )
        if state.tracks:
            connection.on_push = state.note
        connector.track(connection)
        return connection

    def _on_connect(self, state: _ThreadState, connection: Connection) -> None:
        """Set up a new connection of ``state`` (the connector's own checks), then
        turn tracking on; a server that refuses RESP3 or tracking turns this client
        to polling, and the call that connected is made again on a plain connection."""
        try:
            self._connector.on_connect(connection)
        except ResponseError as exc:
            if state.tracks and "hello" in str(exc).lower():  # a server before RESP3
                self._refused(exc)
            raise
        if state.tracks:
            try:
                connection.command("CLIENT", "TRACKING", "ON")
            except ResponseError as exc:
                self._refused(exc)
            state.channel = self._subscribe(connection)
        state.fresh = True

    def _subscribe(self, connection: Connection) -> str | None:
        """Subscribe a new connection to a channel of its own; None where the
        server refuses (an ACL user without channels): waits then read."""
        if not self._channel_prefix:
            return None
        channel = f"{self._channel_prefix}{os.urandom(8).hex()}"
        try:
            connection.send_command("SUBSCRIBE", channel)
            connection.read_response(push_request=True)
        except ResponseError as exc:
            with self._lock:
                was, self._channel_prefix = self._channel_prefix, ""
            if was:
                logger.warning(
                    "%s: the server refuses SUBSCRIBE (%s); waits read each result "
                    "once woken instead of receiving it (grant the ACL user the channels "
                    "'&%s*')",
                    self._connector.describe(),
                    exc,
                    was,
                )
            return None
        return channel

    def _refused(self, exc: ResponseError) -> None:
        with self._lock:
            was, self.tracks = self.tracks, False
        if was:
            logger.warning(
                "%s: the server refuses RESP3 client tracking (%s); result waits poll "
                "instead, every %g ms at most",
                self._connector.describe(),
                exc,
                _POLL_MAX_S * 1000,
            )
        raise _RefusedTracking(str(exc)) from exc


class _RefusedTracking(ResponseError):
    """The server refused tracking on a new connection: make the call again."""


class _ThreadState:
    """One thread's tracking connection, and what the server said changed on it."""

    __slots__ = (
        "addressed",
        "changed",
        "channel",
        "connection",
        "everything",
        "expects_push",
        "fresh",
        "pid",
        "poll_s",
        "pushed",
        "tracks",
    )

    def __init__(self, *, tracks: bool) -> None:
        self.connection: Connection  # set once made: its connect hook needs this state
        self.tracks = tracks  # whether its connection is a tracking one
        self.fresh = True  # nothing read on it is tracked yet
        self.pid = current_pid()
        self.poll_s = _POLL_FIRST_S
        # Names pushed and not yet taken: the reader hands a push that comes in
        # the middle of a reply to the handler (note) and reads on, so the
        # handler must keep them.
        self.changed: set[bytes] = set()
        self.everything = False
        self.channel: str | None = None  # subscribed to, once connected
        self.pushed: dict[bytes, bytes] = {}  # records pushed there: key -> value
        self.expects_push = True  # until the first send after a wait took the channel
        # The key and channel of that send, until the next wait starts.
        self.addressed: tuple[bytes, str] | None = None

    def note(self, push: list[Any]) -> None:
        """The push handler: ``[b"invalidate", keys]`` (keys None for a flush), and
        ``[b"message", channel, key length + key + value]``, a record pushed."""
        kind = push[0] if push else None
        if kind == b"message":
            if len(push) == 3 and isinstance(push[2], bytes) and len(push[2]) >= 4:
                data = push[2]
                end = 4 + int.from_bytes(data[:4], "big")
                self.pushed[data[4:end]] = data[end:]
            return
        if kind != b"invalidate":
            return  # (un)subscribe confirmations
        keys = push[1] if len(push) > 1 else None
        if keys is None:
            self.everything = True
        else:
            self.changed.update(k if isinstance(k, bytes) else bytes(k) for k in keys)

    def take_changes(self) -> frozenset[bytes] | _Everything:
        if self.fresh or self.everything:
            self.everything = False
            self.changed.clear()
            return EVERYTHING
        changed = frozenset(self.changed)
        self.changed.clear()
        return changed
