"""The result backend contracts: storing results, and coordinating workers.

Two protocols, because not every store can do both (and a third, optional):

* :class:`ResultBackend` stores and reads one :class:`ResultRecord` per task
  id. The record's ``payload`` is already serialized by the core (the result
  value, or the exception description of a failure), so a backend stores bytes
  and plain metadata and never needs a serializer of its own. Every result
  backend implements it.
* :class:`Coordination` is the shared state workers agree through: chord joins
  (:meth:`~Coordination.set_add`, :meth:`~Coordination.claim`), counters,
  revocation marks (:meth:`~Coordination.put_mark`) and a renewable leader
  lease (:meth:`~Coordination.acquire_lease`). A result backend that can keep
  such state implements it too (every store-backed backend does); one that only
  delivers results (``rpc://``) does not, and an app then names a separate
  coordination store in ``coordination_url`` (see :mod:`petiole.coordination`).

* :class:`RepliesToSender` is the optional part of a backend that does not
  store results at all but delivers each one to the client that sent its task
  (``rpc://``): producers put its :meth:`~RepliesToSender.reply_address` in the
  ``reply_to`` header of each task they send, workers copy that header into
  every :class:`ResultRecord` of the task, and the backend sends the record
  there. Only that client reads it; nothing persists, nothing expires by ttl.
  Store-backed backends ignore ``reply_to``, unless:

* :class:`PushesToSender` is the optional part of a store that, besides
  storing each record, pushes the ready ones to the client that sent the task
  when that client listens, so that its wait takes the record from the push
  instead of reading the store again once woken. Producers put the calling
  thread's :meth:`~PushesToSender.listening_address` (when it has one) in the
  ``reply_to`` header, and workers copy it into the records as above. The
  record is stored all the same: a push is a shortcut, never the only copy.

Guarantees every result backend gives:

* :meth:`ResultBackend.store` is idempotent: storing the same record twice
  (a redelivered task) leaves one correct record. The last write wins.
* Records expire ``ttl_s`` seconds after they are stored (``None`` = keep).

Every coordination operation is atomic across processes and machines, so a
chord knows exactly once that its last member finished, and a lease has at most
one holder at a time by the store's clock.

Every method may be called from several threads at once. Failures of the
underlying client are raised as :class:`~petiole.errors.ResultBackendError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from petiole import states


@dataclass(frozen=True, slots=True)
class BackendCapabilities:
    """``push_wait``: :meth:`ResultBackend.wait` is woken by the store (pub/sub,
    notifications) rather than polling. ``max_result_bytes``: the largest
    payload it accepts (``None`` = no fixed limit). ``replies_to_sender``: the
    backend implements :class:`RepliesToSender` — records reach only the client
    whose address they carry, are kept in its memory, and ``ttl_s`` does not
    apply (the conformance kit skips the expiry tests, naming this)."""

    push_wait: bool = False
    max_result_bytes: int | None = None
    replies_to_sender: bool = False


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """A task's state and, once ready, its serialized outcome.

    ``payload``: the serialized return value (SUCCESS), exception description
    (FAILURE, RETRY, REVOKED), or ``b""`` for states without one.
    ``content_type``: the serializer that produced ``payload``.
    ``meta``: JSON-safe extras (task name, worker, children, group id, ...).
    ``reply_to``: the address of the client that sent the task (its message's
    ``reply_to`` header), where a :class:`RepliesToSender` backend delivers the
    record; ``None`` when the sender asked for none. Stores do not keep it.
    """

    task_id: str
    state: str
    payload: bytes = b""
    content_type: str = "application/json"
    traceback: str | None = None
    date_done: float | None = None  # seconds since the epoch, set for ready states
    meta: Mapping[str, Any] = field(default_factory=dict)
    reply_to: str | None = field(default=None, compare=False)

    @property
    def ready(self) -> bool:
        return self.state in states.READY_STATES


@runtime_checkable
class ResultBackend(Protocol):
    """A result store. Created by a factory registered through ``petiole_result_backends``.

    It may implement :class:`Coordination` too; the core asks with
    ``isinstance(backend, Coordination)`` and never assumes it.
    """

    capabilities: BackendCapabilities

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        """Write ``record`` for ``record.task_id``, replacing any earlier record.

        It expires ``ttl_s`` seconds from now (``None`` = never). Raises
        :class:`~petiole.errors.ResultTooLarge` for a record over the store's
        size limit (``capabilities.max_result_bytes`` or a server setting), and
        :class:`~petiole.errors.ResultBackendError` for other failures — among
        them a record whose ``meta`` is not JSON-safe, which is not stored at all.
        """
        ...

    def get(self, task_id: str) -> ResultRecord | None:
        """The record for ``task_id``, or ``None`` when unknown or expired (PENDING)."""
        ...

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """Records for those ids that have one, in as few round trips as the store allows."""
        ...

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        """Block until every id has a *ready* record, or ``timeout_s`` passes.

        Returns the ready records found (all of them on success; a subset on
        timeout, never raising for it). ``None`` waits forever.
        """
        ...

    def forget(self, task_ids: Sequence[str]) -> None:
        """Delete the records of those ids. Unknown ids are ignored."""
        ...

    def close(self) -> None:
        """Release connections. Calling it twice is harmless."""
        ...


@runtime_checkable
class StoresInBatches(Protocol):
    """Optional: a backend that stores several records in one round trip.

    A worker running short tasks back to back stores their results through it,
    before acknowledging their messages (see docs/worker.md, "Results of short
    tasks")."""

    def store_many(self, records: Sequence[ResultRecord], *, ttl_s: float | None) -> None:
        """Store each record as :meth:`ResultBackend.store` would. All are stored
        when this returns; when it raises, any of them may be stored (storing is
        idempotent, so storing them all again is safe)."""
        ...


@runtime_checkable
class RepliesToSender(Protocol):
    """Optional: a backend that delivers each record to the client that sent its task.

    ``capabilities.replies_to_sender`` is True exactly when a backend implements it.
    """

    def reply_address(self) -> str:
        """Where this client receives the records of the tasks it sends, ready to
        receive them when this returns (a reply queue, declared). Producers put it
        in each task's ``reply_to`` header; the same string every call."""
        ...


@runtime_checkable
class PushesToSender(Protocol):
    """Optional: a store that also pushes each ready record it stores to the
    client that sent the task, when the record's ``reply_to`` is an address of
    its own (see the module docstring). A waiter woken by the push has the record
    in hand; one that missed it (it was not listening yet, its connection was
    replaced) finds the record in the store as always."""

    def listening_address(self, task_id: str) -> str | None:
        """Where the calling thread receives the pushed record of ``task_id``, a
        task it is about to send; None while it does not listen (e.g. before its
        first wait) or does not expect to wait for that task soon (a store may
        push only to a thread that waits for each task it sends). Producers call
        it for every task they send that keeps a result: it must be cheap, and
        must not connect.

        A store that answered may count on the push: its next wait for that task
        alone may skip reading the store until a push could have come. It must
        still find a record stored without one (``revoke()``'s, a push the server
        refused), at the latest shortly after (the kit checks it)."""
        ...


@runtime_checkable
class Coordination(Protocol):
    """Shared state for coordinating workers (see the module docstring).

    Keys of sets, counters, claims and marks are strings chosen by the core
    (``petiole:chord:<group id>``, ...); one key names one kind of thing, and a
    backend may keep claims and marks in one table. Lease names are a
    namespace of their own.
    """

    def set_add(self, key: str, member: str, *, ttl_s: float | None) -> int:
        """Atomically add ``member`` to the set ``key``; return the set's size after.

        Adding a member twice does not grow the set, so a redelivered chord
        member is counted once. The set expires ``ttl_s`` after the last add.
        """
        ...

    def incr(self, key: str, amount: int = 1, *, ttl_s: float | None) -> int:
        """Atomically add ``amount`` to the counter ``key`` (created at 0); return the new value.

        The counter expires ``ttl_s`` after the last increment (``None`` = never).
        """
        ...

    def claim(self, key: str, owner: str, *, ttl_s: float | None) -> str:
        """Atomically make ``owner`` the owner of ``key`` unless someone already is;
        return the owner after the call.

        The first claimer wins and every later claim, by anyone, returns the
        winner, so exactly one of several racing callers sees its own name — and
        a winner that claims again (a redelivered task) still sees its own. The
        claim expires ``ttl_s`` after it was made (``None`` = never).
        """
        ...

    def put_mark(self, key: str, value: str, *, ttl_s: float | None) -> None:
        """Set the mark ``key`` to ``value``, replacing any earlier value (last write wins).

        The mark expires ``ttl_s`` after this call (``None`` = never). Revocation
        keeps its marks this way.
        """
        ...

    def get_marks(self, keys: Sequence[str]) -> dict[str, str]:
        """The values of those of ``keys`` that are marks and have not expired."""
        ...

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete sets, counters, claims and marks by key. Unknown keys are ignored.

        Leases are not deleted: only their holder releases them.
        """
        ...

    # -- the leader lease ---------------------------------------------------------
    #
    # A lease has at most one holder at a time: the owner that acquired it last,
    # until ``ttl_s`` passes without a renewal. Expiry is by the store's clock
    # where the store keeps time (Redis and Cassandra TTLs, memcached item
    # expiry), by the caller's wall clock otherwise (memory, sqlite, Mongo), so
    # holders on machines whose clocks disagree keep ``ttl_s`` well above the
    # skew and renew well before it ends. No fencing token is provided: a holder
    # that stalls past its ttl may still be acting when the next one starts, so
    # work guarded by a lease must tolerate an overlap or fence itself.

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Make ``owner`` the holder of lease ``name`` for ``ttl_s`` seconds, if it can.

        True when ``owner`` holds it after the call: the lease was free, had
        expired, or was already ``owner``'s (then this renews it, like
        :meth:`renew_lease`). False when another owner holds it, which is left
        unchanged. Of several callers racing for a free lease, exactly one wins.
        """
        ...

    def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Extend ``owner``'s hold on lease ``name`` to ``ttl_s`` seconds from now.

        False, changing nothing, when ``owner`` is not the holder (never was,
        released it, or let it expire).
        """
        ...

    def release_lease(self, name: str, owner: str) -> bool:
        """Free lease ``name`` if ``owner`` holds it; True if it did.

        False, changing nothing, when another owner holds it or nobody does.
        """
        ...

    def close(self) -> None:
        """Release connections. Calling it twice is harmless."""
        ...


BackendFactory = Callable[[str, Mapping[str, Any]], ResultBackend]
"""``factory(url, options) -> ResultBackend``, registered by URL scheme through
``petiole_result_backends``."""
