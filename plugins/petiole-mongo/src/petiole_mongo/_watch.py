"""Push instead of polling, where the deployment allows: a change stream per component.

A :class:`ChangeFeed` reads one change stream on one collection in a daemon
thread and hands each change to a callback (the transport's: "a message may
have become available"; the backend's: "these results are ready"). Waiters
still poll, but slowly, as a safety net; the feed wakes them at once.

Change streams need a replica set or a sharded cluster. On a standalone
server, or with ``change_streams=false``, the feed never starts and waiters
poll every ``poll_interval_ms``; the same happens, logged once, if the server
refuses to open the stream. A stream that breaks after it worked (the server
restarting) is reopened with backoff; meanwhile waiters poll. The break is
logged as one warning and the reopening as one INFO line with how long it took
(:mod:`petiole.outages`). Each time the stream (re)opens, ``on_live`` runs, so
waiters look again for anything that changed while no stream was open.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from pymongo.errors import OperationFailure, PyMongoError

from petiole.outages import OutageTracker, backoff_s
from petiole_mongo._client import Connector, Document, logger, reason

# A getMore on the stream waits at most this long, so close() is noticed soon.
_MAX_AWAIT_MS = 500
_BACKOFF_FIRST_S = 0.1
_BACKOFF_CAP_S = 5.0


class ChangeFeed:
    """One change stream, started on first need (see the module docstring)."""

    def __init__(
        self,
        conn: Connector,
        collection: str,
        pipeline: Sequence[Document],
        *,
        on_change: Callable[[Document], None],
        on_live: Callable[[], None],
    ) -> None:
        self._conn = conn
        self._collection = collection
        self._pipeline = list(pipeline)
        self._on_change = on_change
        self._on_live = on_live
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._given_up = not conn.target.options.change_streams
        self._live = False
        self._outages = OutageTracker(
            logger,
            conn.describe(),
            lost="change stream lost",
            meanwhile="polling until it reopens",
            back="change stream reopened",
        )

    @property
    def live(self) -> bool:
        """Whether the stream is open now (waiters may then poll slowly)."""
        return self._live

    def start(self) -> None:
        """Start the reading thread unless it runs, or change streams are unavailable."""
        if self._started() or self._closed():
            return
        with self._lock:
            if self._started():
                return
            try:
                supported = self._conn.features()[1]
            except PyMongoError:
                return  # the server is unreachable: try again at the next wait
            if not supported:
                self._given_up = True
                logger.info(
                    "%s: the server offers no change streams (not a replica set); "
                    "waiting polls every %d ms",
                    self._conn.describe(),
                    self._conn.target.options.poll_interval_ms,
                )
                return
            self._thread = threading.Thread(
                target=self._run, name=f"petiole-mongo-watch-{self._collection}", daemon=True
            )
            self._thread.start()

    def _started(self) -> bool:
        return self._thread is not None or self._given_up

    def _closed(self) -> bool:
        return self._conn.closed

    def _run(self) -> None:
        attempt = 0
        collection = self._conn.db[self._collection]
        while not self._closed():
            opened = False
            try:
                with collection.watch(self._pipeline, max_await_time_ms=_MAX_AWAIT_MS) as stream:
                    opened = True
                    self._live = True
                    attempt = 0
                    self._outages.succeeded()
                    self._on_live()
                    while not self._closed():
                        change = stream.try_next()
                        if change is not None:
                            self._on_change(change)
            except OperationFailure as exc:
                self._live = False
                if self._closed():
                    return
                if not opened:
                    self._given_up = True
                    logger.info(
                        "%s: the server refused a change stream (%s); waiting polls every %d ms",
                        self._conn.describe(),
                        reason(exc),
                        self._conn.target.options.poll_interval_ms,
                    )
                    return
                self._outages.failed(reason(exc))
            except PyMongoError as exc:
                self._live = False
                if self._closed():
                    return
                self._outages.failed(reason(exc))
            self._live = False
            delay_s = backoff_s(attempt, first_s=_BACKOFF_FIRST_S, cap_s=_BACKOFF_CAP_S)
            attempt += 1
            self._conn.wait_closed(delay_s)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Wait for the reading thread to end (call after the connector is closed)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        self._live = False
