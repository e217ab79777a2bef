"""The one module that imports cassandra-driver, behind a narrow typed surface.

cassandra-driver ships no type hints, so its imports carry
``type: ignore[import-untyped]`` here and nowhere else; the rest of the plugin
sees :class:`Driver`, :class:`Prepared` and :class:`Rows`, and the error
classifiers below. Rows come back as plain tuples (``tuple_factory``).
"""

from __future__ import annotations

import logging
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NewType

from petiole_cassandra._options import CassandraTarget

with warnings.catch_warnings():
    # cassandra.cluster imports its eventlet reactor when eventlet is installed
    # (petiole-eventlet), which warns that eventlet is deprecated: not ours to fix.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    warnings.simplefilter("ignore", DeprecationWarning)
    from cassandra import (  # type: ignore[import-untyped]
        ConsistencyLevel,
        InvalidRequest,
        OperationTimedOut,
        ReadFailure,
        ReadTimeout,
        Unavailable,
        WriteFailure,
        WriteTimeout,
        WriteType,
    )
    from cassandra.auth import PlainTextAuthProvider  # type: ignore[import-untyped]
    from cassandra.cluster import (  # type: ignore[import-untyped]
        EXEC_PROFILE_DEFAULT,
        Cluster,
        ExecutionProfile,
        NoHostAvailable,
    )
    from cassandra.connection import ConnectionException  # type: ignore[import-untyped]
    from cassandra.policies import (  # type: ignore[import-untyped]
        DCAwareRoundRobinPolicy,
        ExponentialReconnectionPolicy,
        TokenAwarePolicy,
    )
    from cassandra.query import tuple_factory  # type: ignore[import-untyped]


class _QuietNegotiation(logging.Filter):
    """Drop the driver's warnings about negotiating the protocol version down (from
    DataStax's versions to Apache Cassandra's): expected on every connect when the
    ``protocol_version`` option is left to negotiate, and no reason to worry anyone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Downgrading core protocol version")


logging.getLogger("cassandra.cluster").addFilter(_QuietNegotiation())

#: A prepared statement (the driver's ``PreparedStatement``), opaque to callers.
Prepared = NewType("Prepared", object)


@dataclass(frozen=True, slots=True)
class Rows:
    """A query's result: its column names and rows (tuples)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def first(self) -> dict[str, Any] | None:
        return dict(zip(self.columns, self.rows[0], strict=True)) if self.rows else None


# -- errors ------------------------------------------------------------------------


def is_outage(exc: BaseException) -> bool:
    """Errors worth retrying: no node reachable, a node restarting, too few replicas
    up, a request that timed out. (A timed-out lightweight transaction is retried
    too; every caller makes its retry safe, see :func:`is_cas_timeout`.)"""
    return isinstance(
        exc,
        (
            NoHostAvailable,
            OperationTimedOut,
            ConnectionException,
            Unavailable,
            ReadTimeout,
            WriteTimeout,
            ReadFailure,
            ConnectionError,
        ),
    ) or (isinstance(exc, WriteFailure) and not is_too_large(exc))


def is_cas_timeout(exc: BaseException) -> bool:
    """A lightweight transaction whose outcome is unknown: it may yet be applied."""
    return isinstance(exc, WriteTimeout) and getattr(exc, "write_type", None) == WriteType.CAS


def is_too_large(exc: BaseException) -> bool:
    """The server refused a write for its size: over ``native_transport_max_message_size``
    (the whole CQL message) or ``max_mutation_size`` (one write)."""
    text = str(exc)
    return isinstance(exc, (InvalidRequest, WriteFailure)) and (
        "exceeds allowed maximum" in text
        or "oversized mutation" in text.lower()
        or "MutationExceededMaxSizeException" in text
        or "is too large for the maximum size" in text
    )


def is_driver_error(exc: BaseException) -> bool:
    """Anything the driver raises about a request (as opposed to a bug of ours)."""
    from cassandra import DriverException

    return isinstance(exc, (DriverException, NoHostAvailable, ConnectionException))


def describe(exc: BaseException) -> str:
    """One line for an error: NoHostAvailable's per-host errors spelled out."""
    if isinstance(exc, NoHostAvailable) and getattr(exc, "errors", None):
        detail = "; ".join(f"{host}: {error}" for host, error in exc.errors.items())
        return f"NoHostAvailable: {detail}"
    return f"{type(exc).__name__}: {exc}"


# -- the driver --------------------------------------------------------------------


class Driver:
    """A connected cluster and session for one target."""

    def __init__(self, target: CassandraTarget) -> None:
        opts = target.options
        kwargs: dict[str, Any] = {
            "connect_timeout": opts.connect_timeout_s,
            "control_connection_timeout": opts.connect_timeout_s,
            "reconnection_policy": ExponentialReconnectionPolicy(0.1, 2.0),
            # Our calls retry an outage themselves; the driver's wait for schema
            # agreement after DDL is kept (schema creation runs once, at start-up).
            "idle_heartbeat_interval": 10,
        }
        if target.username is not None:
            kwargs["auth_provider"] = PlainTextAuthProvider(target.username, target.password or "")
        if opts.protocol_version:
            kwargs["protocol_version"] = opts.protocol_version
        policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=opts.local_dc or None))
        profile = ExecutionProfile(
            load_balancing_policy=policy,
            consistency_level=ConsistencyLevel.name_to_value[opts.read_consistency],
            serial_consistency_level=ConsistencyLevel.name_to_value[opts.serial_consistency],
            request_timeout=opts.request_timeout_s,
            row_factory=tuple_factory,
        )
        kwargs["execution_profiles"] = {EXEC_PROFILE_DEFAULT: profile}
        if opts.secure_connect_bundle:
            kwargs["cloud"] = {"secure_connect_bundle": opts.secure_connect_bundle}
        else:
            kwargs["contact_points"] = list(target.hosts)
            if opts.tls:
                kwargs["ssl_context"] = _ssl_context(target)
        self.target = target
        self._cluster = Cluster(**kwargs)
        self._session: Any = None

    def connect(self) -> None:
        """Open the session (raises the driver's NoHostAvailable when no host answers)."""
        self._session = self._cluster.connect()

    def prepare(self, cql: str, *, consistency: str, idempotent: bool = True) -> Prepared:
        statement = self._session.prepare(cql)
        statement.consistency_level = ConsistencyLevel.name_to_value[consistency]
        statement.is_idempotent = idempotent
        return Prepared(statement)

    def execute(self, statement: Prepared | str, params: Sequence[Any] = ()) -> Rows:
        return _rows(self._session.execute(statement, params))

    def execute_ddl(self, cql: str) -> None:
        """A schema change, with a long timeout (it waits for schema agreement)."""
        self._session.execute(cql, timeout=max(60.0, self.target.options.request_timeout_s))

    def execute_many(
        self, statement: Prepared, params: Sequence[Sequence[Any]], *, concurrency: int
    ) -> list[Rows]:
        """Run ``statement`` once per parameter tuple with the driver's async execution,
        up to ``concurrency`` requests in flight; results in order. Raises the first
        error (after the requests in flight have finished)."""
        results: list[Rows] = []
        for start in range(0, len(params), concurrency):
            futures = [
                self._session.execute_async(statement, p)
                for p in params[start : start + concurrency]
            ]
            failure: BaseException | None = None
            for future in futures:
                try:
                    results.append(_rows(future.result()))
                except Exception as exc:
                    failure = failure or exc
            if failure is not None:
                raise failure
        return results

    def tables(self, keyspace: str) -> set[str] | None:
        """Table names of ``keyspace`` from the driver's schema metadata; None if it
        does not exist."""
        self._cluster.refresh_schema_metadata(max_schema_agreement_wait=10)
        found = self._cluster.metadata.keyspaces.get(keyspace)
        return None if found is None else set(found.tables)

    def close(self) -> None:
        self._cluster.shutdown()


def _rows(result: Any) -> Rows:
    return Rows(tuple(result.column_names or ()), list(result.current_rows))


def _ssl_context(target: CassandraTarget) -> ssl.SSLContext:
    opts = target.options
    context = ssl.create_default_context(cafile=opts.tls_ca_file or None)
    context.check_hostname = opts.tls_check_hostname
    if opts.tls_certfile:
        context.load_cert_chain(opts.tls_certfile, opts.tls_keyfile or None)
    return context


def probe(host: str, port: int, *, timeout_s: float = 5.0) -> bool:
    """Whether a node answers a CQL query (used by the test helpers to wait for start-up)."""
    cluster = Cluster(
        contact_points=[(host, port)],
        connect_timeout=timeout_s,
        control_connection_timeout=timeout_s,
    )
    try:
        session = cluster.connect()
        session.execute("SELECT release_version FROM system.local", timeout=timeout_s)
        return True
    except Exception:  # any failure means "not yet"
        return False
    finally:
        cluster.shutdown()
