"""Redis pub/sub on raw connections: the result backend's listener and broadcast subscriptions.

Both use a dedicated connection outside the pool (a subscribed connection can
do nothing else) and survive a restart of the server: they reconnect with
:func:`petiole.outages.call_through_outage` and subscribe again, reporting to
the outage tracker of the component's :class:`~petiole_redis._client.Connector`,
so an outage is one warning line however many connections run into it. Pub/sub
itself keeps nothing, so whoever relies on it must re-read the state after a
reconnect; the listener tells its watchers when (``resync``). A broadcast
subscription is at most once by contract (:class:`petiole.transport.Broadcast`):
it just misses what was sent while it was away.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence

import redis
from redis.exceptions import RedisError

from petiole.outages import Closed, call_through_outage
from petiole.transport import ThreadedSubscription
from petiole_redis._client import Connector, RawConnection, error_line, is_outage

# How often the listener thread looks up from an idle connection (to notice close()).
_IDLE_READ_S = 1.0


class Watch:
    """One waiter's view of the listener: the messages of its channels, and
    whether it must re-read what it waits for (the connection was replaced)."""

    def __init__(self, channels: Mapping[bytes, str]) -> None:
        self.channels = channels  # channel -> the waiter's name for it (a task id)
        self._cond = threading.Condition()
        self._inbox: list[tuple[str, bytes]] = []
        self._resync = False

    def deliver(self, channel: bytes, data: bytes) -> None:
        with self._cond:
            self._inbox.append((self.channels[channel], data))
            self._cond.notify()

    def resync(self) -> None:
        with self._cond:
            self._resync = True
            self._cond.notify()

    def next(self, timeout_s: float | None) -> tuple[list[tuple[str, bytes]], bool]:
        """Messages received so far and the resync flag, waiting up to ``timeout_s`` for either."""
        with self._cond:
            if not self._inbox and not self._resync:
                self._cond.wait(timeout_s)
            inbox, resync = self._inbox, self._resync
            self._inbox, self._resync = [], False
        return inbox, resync


class Listener:
    """One subscribed connection shared by every ``wait`` of a result backend,
    read by one daemon thread that hands each message to the watches of its channel.

    :meth:`watch` returns once the server has confirmed the subscription (a
    ``PING`` sent after the ``SUBSCRIBE`` on the same connection has come back),
    so a record stored after it returns is always pushed to the watch, and one
    stored before it is found by the caller's own read.
    """

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._confirm_timeout_s = connector.target.options.socket_timeout_s
        self._lock = threading.Lock()
        self._connection: RawConnection | None = None
        self._watches: dict[bytes, set[Watch]] = {}
        self._pongs: dict[bytes, threading.Event] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, channels: Mapping[bytes, str], *, timeout_s: float | None = None) -> Watch:
        """Watch ``channels``; returns once subscribed, or after ``timeout_s``
        (the caller's deadline) or the socket timeout, whichever is first."""
        watch = Watch(channels)
        token = os.urandom(8).hex().encode()
        confirmed = threading.Event()
        with self._lock:
            if self._closed:
                raise Closed
            new = [c for c in channels if c not in self._watches]
            for channel in channels:
                self._watches.setdefault(channel, set()).add(watch)
            self._pongs[token] = confirmed
            if self._thread is None:
                self._start_locked()
            sent = self._send_locked([("SUBSCRIBE", *new)] if new else [], token)
        if sent:
            wait_s = self._confirm_timeout_s
            confirmed.wait(wait_s if timeout_s is None else max(0.0, min(wait_s, timeout_s)))
        with self._lock:
            self._pongs.pop(token, None)
        return watch

    def unwatch(self, watch: Watch) -> None:
        with self._lock:
            gone = []
            for channel in watch.channels:
                watchers = self._watches.get(channel)
                if watchers is None:
                    continue
                watchers.discard(watch)
                if not watchers:
                    del self._watches[channel]
                    gone.append(channel)
            if gone:
                self._send_locked([("UNSUBSCRIBE", *gone)], None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
            watches = {w for ws in self._watches.values() for w in ws}
            for event in self._pongs.values():
                event.set()
        if connection is not None:
            connection.disconnect()
        for watch in watches:
            watch.resync()

    # -- the connection ----------------------------------------------------------------

    def _start_locked(self) -> None:
        """Connect in the caller's thread (so its first watch needs no resync), then read."""
        # On failure the reader thread reconnects, with backoff and the outage line.
        with contextlib.suppress(RedisError, OSError):
            self._connect_locked()
        self._thread = threading.Thread(
            target=self._read_forever, name="petiole-redis-results", daemon=True
        )
        self._thread.start()

    def _connect_locked(self) -> None:
        connection = self._connector.new_connection()
        connection.connect()
        if self._watches:
            connection.send_command("SUBSCRIBE", *self._watches)
        self._connection = connection

    def _send_locked(self, commands: list[tuple[object, ...]], token: bytes | None) -> bool:
        """Send on the subscribed connection; False if it is down (the reader will
        reconnect, subscribe to every watched channel and tell the watches)."""
        connection = self._connection
        if connection is None:
            return False
        try:
            for command in commands:
                connection.send_command(*command)
            if token is not None:
                connection.send_command("PING", token)
        except (RedisError, OSError):
            # redis-py disconnected it; left in place, the reader's next read would
            # quietly connect it again, unsubscribed, and wait on it for good.
            self._connection = None
            connection.disconnect()
            return False
        return True

    def _reconnect(self, _client: redis.Redis) -> None:
        with self._lock:
            if self._closed:
                raise Closed
            self._connect_locked()
            connection = self._connection
            # Sent under the lock, like every write on this connection (watch, unwatch).
            token = b"resubscribed-" + os.urandom(8).hex().encode()
            assert connection is not None
            connection.send_command("PING", token)
        try:
            self._confirm_subscribed(connection, token)
        except BaseException:
            with self._lock:
                if self._connection is connection:
                    self._connection = None
            connection.disconnect()
            raise
        with self._lock:
            watches = {w for ws in self._watches.values() for w in ws}
            for event in self._pongs.values():
                event.set()
        for watch in watches:
            watch.resync()

    def _confirm_subscribed(self, connection: RawConnection, token: bytes) -> None:
        """Wait until the server has the new connection's subscriptions (the
        ``PING`` sent after them has come back). Only then may the watches re-read:
        a record stored between their read and a subscription still in flight
        would be neither read nor pushed, and its waiter would wait forever."""
        while True:
            reply = connection.read_response()
            if isinstance(reply, list) and reply[:2] == [b"pong", token]:
                return
            self._dispatch(reply)  # messages of channels already confirmed

    def _read_forever(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                connection = self._connection
            if connection is None:
                try:
                    self._connector.call("subscribe to result notifications", self._reconnect)
                except Closed:
                    return
                except Exception:  # keep listening; waiters see errors on their own reads
                    self._connector.wait_closed(1.0)
                continue
            try:
                readable = connection.can_read(timeout=_IDLE_READ_S)
                reply = connection.read_response() if readable else None
            except (RedisError, OSError, ValueError) as exc:  # ValueError: closed under us
                with self._lock:
                    if self._connection is connection:
                        self._connection = None
                connection.disconnect()
                if self._stopped():
                    return
                if not isinstance(exc, ValueError):
                    self._connector.note_outage(exc)
                continue
            with self._lock:
                replaced = self._connection is not connection
            if replaced:
                # Dropped by a failed send while this read: can_read may have connected
                # it again (redis-py does that), with no subscription.
                connection.disconnect()
                continue
            if readable:
                self._dispatch(reply)

    def _stopped(self) -> bool:
        with self._lock:
            return self._closed

    def _dispatch(self, reply: object) -> None:
        if not isinstance(reply, list) or len(reply) < 2:
            return
        kind = reply[0]
        if kind == b"message" and len(reply) == 3:
            with self._lock:
                watchers = list(self._watches.get(reply[1], ()))
            for watch in watchers:
                watch.deliver(reply[1], reply[2])
        elif kind == b"pong":
            with self._lock:
                event = self._pongs.get(reply[1])
            if event is not None:
                event.set()


class Subscription(ThreadedSubscription):
    """Broadcast messages of some channels, handed to a callback on a thread of its own.

    Made by :meth:`petiole_redis.transport.RedisTransport.subscribe`, on a
    connection of its own. It subscribes in the caller's thread (so it is live
    when made) and reads on its thread. Delivery is at most once: when the
    connection drops, the thread reconnects with backoff for as long as the
    outage lasts (one outage line, as every call) and subscribes again; what
    was broadcast meanwhile is missed.
    """

    def __init__(
        self,
        connector: Connector,
        channels: Sequence[str],
        on_message: Callable[[str, bytes], None],
        *,
        channel_key: Callable[[str], str],
    ) -> None:
        super().__init__(channels, on_message, thread_name="petiole-redis-broadcast")
        self._connector = connector
        self._names = {channel_key(c).encode(): c for c in self.channels}
        self._lock = threading.Lock()
        self._connection: RawConnection | None = None
        try:
            connector.call("subscribe to broadcasts", self._open)
        except Closed:
            raise connector.error_type(f"{connector.describe()} is closed (subscribe)") from None
        self.start()

    def _open(self, _client: redis.Redis | None = None) -> None:
        """Connect and subscribe; returns once the server confirmed every channel."""
        connection = self._connector.new_connection()
        try:
            connection.connect()
            connection.send_command("SUBSCRIBE", *self._names)
            for _ in self._names:  # one confirmation per channel, before any message
                connection.read_response()
        except BaseException:
            connection.disconnect()
            raise
        with self._lock:
            closed = self.closed
            if not closed:
                self._connection = connection
        if closed:  # meanwhile
            connection.disconnect()

    def fetch(self) -> list[tuple[str, bytes]] | None:
        if self._connector.closed:
            return None
        with self._lock:
            connection = self._connection
        if connection is None:
            self._reconnect()
            return []
        try:
            if not connection.can_read(timeout=_IDLE_READ_S):
                return []
            reply = connection.read_response()
        except Exception as exc:
            self._drop(connection)
            if self.closed or self._connector.closed:
                return []
            if not isinstance(exc, (RedisError, OSError, ValueError)):
                raise
            if not isinstance(exc, ValueError):  # ValueError: closed under us
                self._connector.note_outage(exc)
            return []
        with self._lock:
            replaced = self._connection is not connection
        if replaced:
            # Closed while this read: can_read may have connected it again
            # (redis-py does that), with no subscription.
            connection.disconnect()
            return []
        if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
            channel = self._names.get(bytes(reply[1]))
            if channel is not None:
                return [(channel, bytes(reply[2]))]
        return []

    def _reconnect(self) -> None:
        """Subscribe on a new connection, retrying until it works or this subscription closes."""
        try:
            call_through_outage(
                self._open,
                outages=self._connector.outages,
                is_outage=_lost_connection,
                reason=error_line,
                closed=self._closed,  # ThreadedSubscription's: close() ends the backoff
                limit_s=math.inf,  # a subscriber outlives any outage
            )
        except Closed:
            return
        except RedisError as exc:  # the server refused: no outage
            raise self._connector.error_type(
                f"{self._connector.describe()}: broadcast subscription: {exc}"
            ) from exc

    def _drop(self, connection: RawConnection) -> None:
        with self._lock:
            if self._connection is connection:
                self._connection = None
        connection.disconnect()

    def wake(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()

    def release(self) -> None:
        self.wake()


def _lost_connection(exc: Exception) -> bool:
    # A raw socket error while subscribing is a lost connection too.
    return is_outage(exc) or isinstance(exc, OSError)
