"""The connection to MongoDB shared by the transport and the result backend.

:class:`Connector` owns one ``MongoClient`` (thread-safe, pooled) and is the
plugin's edge: every call to the server goes through :meth:`Connector.call`,
which

* creates the component's indexes on first use (once per process, idempotent
  on the server, so any number of processes may race to create them);
* translates pymongo's and bson's exceptions into the component's own error
  type (:class:`~petiole.errors.TransportError` or
  :class:`~petiole.errors.ResultBackendError`), naming the operation and the
  URL with its password masked.

Outages are ridden out by pymongo itself: an operation waits up to
``serverSelectionTimeoutMS`` (30 s by default) for a usable server, and
retryable reads and writes (on by default) are retried once after a network
error, exactly once on the server for writes. This module adds no retry loop
of its own.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from bson.errors import BSONError
from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import ConfigurationError, PyMongoError

from petiole.errors import ConfigError, PetioleError
from petiole.outages import Closable
from petiole_mongo._options import MongoTarget

logger = logging.getLogger("petiole_mongo")

T = TypeVar("T")

Document = dict[str, Any]


class Closed(Exception):
    """The component was closed (internal; waiting callers return quietly)."""


class Notifier:
    """A generation counter that waiters block on: wakes them when it moves.

    Capture :attr:`generation` *before* looking for work, then :meth:`wait`
    with it: a notification between the look and the wait is not lost.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0

    def notify(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout_s: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.generation != seen, max(timeout_s, 0.0))


class Connector(Closable):
    """One ``MongoClient`` and the error policy of one component."""

    def __init__(
        self,
        target: MongoTarget,
        *,
        component: str,
        error_type: type[PetioleError],
        prepare: Callable[[Database[Document]], None],
    ) -> None:
        Closable.__init__(self)
        self.target = target
        self.component = component
        self.error_type = error_type
        self._prepare = prepare
        self._prepared = False
        self._lock = threading.Lock()
        self._features: tuple[bool, bool] | None = None
        try:
            # pymongo only warns about a bad option value, and then ignores it.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                self.client: MongoClient[Document] = MongoClient(
                    target.client_url, appname="petiole", **target.client_options
                )
            refused = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
            if refused:
                self.client.close()
                raise ConfigError(
                    f"{component} URL {target.masked_url!r} is invalid: {'; '.join(refused)}"
                )
        except (ConfigurationError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{component} URL {target.masked_url!r} is invalid: {reason(exc)}"
            ) from exc
        except PyMongoError as exc:  # an SRV lookup that failed, say
            raise error_type(
                f"cannot use the {component} {target.masked_url}: {reason(exc)}"
            ) from exc
        self.db: Database[Document] = self.client[target.database]

    def describe(self) -> str:
        return f"{self.component} {self.target.masked_url}"

    def collection_name(self, suffix: str) -> str:
        return f"{self.target.options.collection_prefix}_{suffix}"

    def call(self, what: str, work: Callable[[Database[Document]], T]) -> T:
        """Run ``work(db)`` (after the first-use preparation).

        ``what`` names the operation in errors. Raises :class:`Closed` if the
        component is closed, the component's error type for any failure of
        pymongo or bson (a ``DocumentTooLarge`` included).
        """
        if self._closed.is_set():
            raise Closed
        try:
            if not self._prepared:
                self._prepare_once()
            return work(self.db)
        except (PyMongoError, BSONError) as exc:
            if self._closed.is_set():
                raise Closed from exc
            raise self.error_type(f"{self.describe()}: {what}: {reason(exc)}") from exc

    def transaction(self, what: str, work: Callable[[ClientSession | None], T]) -> T:
        """Run ``work(session)`` in a transaction when the deployment has them
        (a replica set or sharded cluster, and the ``transactions`` option),
        retrying transient transaction errors; otherwise ``work(None)``, whose
        steps must then be safe in the order they run (see the callers)."""

        def run(db: Database[Document]) -> T:
            if not self.target.options.transactions or not self.features()[0]:
                return work(None)
            with self.client.start_session() as session:
                result: T = session.with_transaction(work)
                return result

        return self.call(what, run)

    def features(self) -> tuple[bool, bool]:
        """``(transactions, change_streams)``: whether the deployment offers them.

        Both need a replica set or a sharded cluster (``hello`` names a set,
        or says ``isdbgrid``); a standalone server offers neither.
        """
        if self._features is None:
            hello = self.client.admin.command("hello")
            clustered = "setName" in hello or hello.get("msg") == "isdbgrid"
            self._features = (clustered, clustered)
        return self._features

    def _prepare_once(self) -> None:
        with self._lock:
            if self._prepared:
                return
            self._prepare(self.db)
            self._prepared = True

    def close(self) -> None:
        """Close the client's connections. Idempotent."""
        if self._mark_closed():
            self.client.close()


def reason(exc: BaseException) -> str:
    text = str(exc)
    # OperationFailure's text ends with the whole server reply; the first line says it.
    first = text.split(", full error:", 1)[0]
    return f"{type(exc).__name__}: {first}"
