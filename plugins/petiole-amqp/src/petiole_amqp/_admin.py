"""The transport's synchronous connection: declarations, counts, purges, ``basic.get``.

These calls are rare next to publishes and deliveries, and each waits for the
broker's answer anyway, so they share one pika ``BlockingConnection`` behind a
lock instead of the I/O thread's callbacks. It runs without heartbeats (nothing
services it between calls; TCP keepalive and the socket timeout find a dead
peer): a message taken with ``basic.get`` stays leased for as long as this
connection lives, however long its task runs.

A channel the broker closes (404 for a queue that does not exist, 406 for one
declared with other arguments) is opened again on the next call; the connection
is opened again when it was lost, and :attr:`generation` counts connections so
that receipts of ``basic.get`` deliveries from a lost one are known to be stale.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from petiole.errors import TransportError
from petiole_amqp._link import ConnectionLost, describe

T = TypeVar("T")
logger = logging.getLogger("petiole_amqp")

# What a broken connection raises from pika (a closed channel is not one of them).
CONNECTION_ERRORS = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.ConnectionClosed,
    pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionWrongStateError,
    OSError,
)


class Admin:
    """A blocking connection shared under a lock (see the module docstring)."""

    def __init__(self, parameters: Sequence[pika.ConnectionParameters]) -> None:
        self._parameters = list(parameters)
        self._host_index = 0
        self.lock = threading.RLock()
        self._connection: BlockingConnection | None = None
        self._channels: dict[str, BlockingChannel] = {}
        self.generation = 0
        self.on_reconnect: Callable[[], None] = lambda: None

    def run(self, op: Callable[[Admin], T]) -> T:
        """``op(self)`` under the lock, on a live connection; a lost connection
        raises :class:`ConnectionLost` (and is replaced at the next call)."""
        with self.lock:
            try:
                self._connect()
                return op(self)
            except CONNECTION_ERRORS as exc:
                self._drop()
                raise ConnectionLost(describe(exc)) from exc
            except pika.exceptions.AMQPChannelError as exc:
                # A channel the broker closed (a queue deleted under us, ...): an
                # error of the call, not an outage; the channel opens again next time.
                raise TransportError(describe(exc)) from exc

    def channel(self, role: str = "probe") -> BlockingChannel:
        """The open channel for ``role`` (``probe`` for declarations and counts,
        ``getter`` for ``basic.get``), opened again if the broker closed it."""
        channel = self._channels.get(role)
        if channel is None or not channel.is_open:
            assert self._connection is not None
            channel = self._connection.channel()
            self._channels[role] = channel
        return channel

    def temporary_channel(self) -> BlockingChannel:
        assert self._connection is not None
        return self._connection.channel()

    def close(self) -> None:
        with self.lock:
            self._drop()

    def _connect(self) -> None:
        if self._connection is not None and self._connection.is_open:
            return
        self._drop()
        parameters = self._parameters[self._host_index % len(self._parameters)]
        try:
            self._connection = BlockingConnection(parameters)
        except CONNECTION_ERRORS:
            self._host_index += 1  # a cluster: the next node next time
            raise
        self.generation += 1
        self.on_reconnect()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self._channels.clear()
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (*CONNECTION_ERRORS, pika.exceptions.AMQPError):
                logger.debug("closing the admin connection failed", exc_info=True)
