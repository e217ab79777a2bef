"""Redis pub/sub on raw connections: the transport's broadcast subscriptions.

Each uses a dedicated connection outside the pool (a subscribed connection can
do nothing else) and survives a restart of the server: it reconnects with
:func:`petiole.outages.call_through_outage` and subscribes again, reporting to
the outage tracker of the component's :class:`~petiole_redis._client.Connector`,
so an outage is one warning line however many connections run into it. A
broadcast subscription is at most once by contract
(:class:`petiole.transport.Broadcast`): it just misses what was sent while it
was away.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

from petiole.outages import Closed, call_through_outage
from petiole.transport import ThreadedSubscription
from petiole_redis._client import Client, Connector, error_line, is_outage
from petiole_redis._connection import Connection
from petiole_redis._errors import RedisError

# How often the listener thread looks up from an idle connection (to notice close()).
_IDLE_READ_S = 1.0


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
        self._connection: Connection | None = None
        try:
            connector.call("subscribe to broadcasts", self._open)
        except Closed:
            raise connector.error_type(f"{connector.describe()} is closed (subscribe)") from None
        self.start()

    def _open(self, _client: Client | None = None) -> None:
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
            # Closed while this read: can_read may have connected it again,
            # with no subscription.
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

    def _drop(self, connection: Connection) -> None:
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
