"""Result handles: :class:`AsyncResult` (one task, by id), :class:`EagerResult`
(a task run in the caller), :class:`GroupResult` (a group's members, saved
under the group's id), and :func:`result_from_tuple`.

:class:`~petiole.result_set.ResultSet`, waiting and ``then()`` callbacks live
in :mod:`petiole.result_set`; ``ResultSet`` is importable from here too. The
API follows Celery's ``celery.result``; where Petiole differs on purpose, the
docstring says so.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, cast

from petiole import app_context, diagnosis, remote_errors, states
from petiole.backend import ResultBackend, ResultRecord
from petiole.coordination import CoordinationUnavailable
from petiole.errors import ResultTimeout, TaskRevoked
from petiole.ports import ResultsApp
from petiole.result_set import (
    OnError,
    ReadyCallbacks,
    ResultSet,
    ValueCallback,
    wait_ready,
    waiting_inside_a_task,
)

__all__ = ["AsyncResult", "EagerResult", "GroupResult", "ResultSet", "result_from_tuple"]

# How long a timed-out get() may spend saying why, beyond its timeout.
_WHY_BUDGET_S = 1.0

# The ready states whose value get() raises (with propagate): Celery's PROPAGATE_STATES.
_RAISED_STATES = frozenset({states.FAILURE, states.REVOKED})

# Guards making a handle's then() callbacks, so two racing then() calls share them.
_MAKING_CALLBACKS = threading.Lock()

A = TypeVar("A", bound="AsyncResult")


class AsyncResult:
    """The state and outcome of one task. Reading an attribute asks the backend
    each time, until the task is ready: a ready record is kept, and read no more.

    ``task_name`` and ``queue`` are known when this handle came from sending the
    task; they make :meth:`why` precise. Without ``app``, the current app's
    backend is read (``AsyncResult(task_id)``, as in Celery; see
    :func:`petiole.current_app`).
    """

    def __init__(
        self,
        task_id: str,
        app: ResultsApp | None = None,
        *,
        task_name: str | None = None,
        queue: str | None = None,
    ) -> None:
        self.id = task_id
        self.app = app if app is not None else cast(ResultsApp, app_context.required())
        self.task_name = task_name
        self._sent_queue = queue
        self._ready_record: ResultRecord | None = None
        # Made by the first then(): most handles never get one, and sending is a hot path.
        self._on_ready: ReadyCallbacks[Any] | None = None

    def __repr__(self) -> str:
        return f"<AsyncResult {self.id} {self.state}>"

    def __str__(self) -> str:
        return self.id

    def __eq__(self, other: object) -> bool:
        """Equal to a handle of the same task, and (as in Celery) to its id."""
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def task_id(self) -> str:
        return self.id

    @property
    def backend(self) -> ResultBackend:
        return self.app.backend

    # -- the record ------------------------------------------------------------------------

    def _record(self) -> ResultRecord | None:
        if self._ready_record is not None:
            return self._ready_record
        record = self.app.backend.get(self.id)
        if record is not None and record.ready:
            self._seen_ready(record)
        return record

    def _seen_ready(self, record: ResultRecord) -> None:
        self._ready_record = record
        if self._on_ready is not None:
            self._on_ready.fire(self)

    def _known_ready(self) -> ResultRecord | None:
        return self._ready_record

    @property
    def state(self) -> str:
        """PENDING (unknown to the store), RECEIVED, STARTED, RETRY, SUCCESS,
        FAILURE, REVOKED, or a state the task set itself (``update_state``)."""
        record = self._record()
        return record.state if record is not None else states.PENDING

    status = state

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def exists(self) -> bool:
        """Whether the store has a record of this task: a PENDING task that was
        never sent, expired or was forgotten has none; one still queued has none
        either, until a worker stores a state (see :meth:`why`)."""
        return self._record() is not None

    def why(self) -> str:
        """Where the task stands and what to check next, in one sentence: its state,
        and for a PENDING task whether its message waits in a queue (which, on which
        broker) or was dead-lettered (with the reason). Best-effort; never raises."""
        return diagnosis.explain(
            self.app, self.id, task_name=self.task_name, queue=self._sent_queue
        )

    # -- what the record holds -----------------------------------------------------------

    @property
    def result(self) -> Any:
        """The return value once SUCCESS; the exception for FAILURE, RETRY and
        REVOKED; for a state the task set itself, the ``meta`` it set with it
        (progress, say); ``None`` when there is nothing (PENDING, STARTED).
        Never waits: :meth:`get` does."""
        record = self._record()
        return None if record is None else self._value(record)

    info = result
    """The same as :attr:`result`: Celery's name for reading progress (``update_state``'s meta)."""

    @property
    def traceback(self) -> str | None:
        """The worker's formatted traceback of a failed task."""
        record = self._record()
        return None if record is None else record.traceback

    @property
    def date_done(self) -> float | None:
        """When the task finished, in seconds since the epoch (``time.time()``).

        Celery gives a ``datetime``; ``datetime.fromtimestamp(r.date_done, timezone.utc)``
        is the same moment."""
        record = self._record()
        return None if record is None else record.date_done

    @property
    def meta(self) -> Mapping[str, Any]:
        """Extras the worker stored: task name, worker, queue, retries, parent, children..."""
        record = self._record()
        return {} if record is None else record.meta

    @property
    def name(self) -> str | None:
        """The task's name: known from sending it, else from its record."""
        return self.task_name or self.meta.get("task")

    @property
    def args(self) -> list[Any] | None:
        """The task's positional arguments when its record carries them, else ``None``.

        Petiole's worker does not store arguments (they may hold what a result
        store should not keep), so this is ``None`` unless the record was stored
        with them — as Celery's is unless ``result_extended`` is on."""
        value = self.meta.get("args")
        return list(value) if isinstance(value, list) else None

    @property
    def kwargs(self) -> dict[str, Any] | None:
        """The task's keyword arguments when its record carries them (see :attr:`args`)."""
        value = self.meta.get("kwargs")
        return dict(value) if isinstance(value, dict) else None

    @property
    def worker(self) -> str | None:
        """The host name of the worker that stored the record."""
        value = self.meta.get("worker")
        return value if isinstance(value, str) else None

    @property
    def retries(self) -> int | None:
        """How many times the task had been retried when the record was stored."""
        value = self.meta.get("retries")
        return value if isinstance(value, int) else None

    @property
    def queue(self) -> str | None:
        """The queue the task was sent to, else the one its record names."""
        if self._sent_queue:
            return self._sent_queue
        value = self.meta.get("queue")
        return value if isinstance(value, str) else None

    @property
    def parent(self) -> AsyncResult | None:
        """The task that sent this one (or the previous step of its chain), read
        from this task's record: ``None`` until the record exists."""
        parent_id = self.meta.get("parent_id")
        return AsyncResult(str(parent_id), self.app) if parent_id else None

    @property
    def children(self) -> list[AsyncResult]:
        """Tasks this one sent while running, its callbacks and the next step of its chain.

        Petiole always records them (Celery needs ``trail=True``)."""
        return [AsyncResult(str(c), self.app) for c in self.meta.get("children") or ()]

    def _value(self, record: ResultRecord) -> Any:
        value = self.app.decode_result(record)  # verified even when it carries no payload
        if not record.payload:
            return None
        if record.state in states.EXCEPTION_STATES:
            if record.state == states.REVOKED:
                reason = value.get("message", "revoked") if isinstance(value, dict) else value
                return TaskRevoked(f"task {self.id} was revoked: {reason}")
            return remote_errors.rebuild(value, record.traceback)
        return value

    def _outcome(
        self, record: ResultRecord | None, propagate: bool, callback: ValueCallback | None
    ) -> Any:
        value = None if record is None else self._value(record)
        if (
            propagate
            and record is not None
            and record.state in _RAISED_STATES
            and isinstance(value, BaseException)
        ):
            raise value
        if callback is not None:
            callback(self.id, value)
        return value

    # -- waiting -----------------------------------------------------------------------------

    def get(
        self,
        timeout: float | None = None,
        *,
        propagate: bool = True,
        interval: float | None = None,
        callback: ValueCallback | None = None,
        no_ack: bool = True,
        follow_parents: bool = True,
        disable_sync_subtasks: bool = True,
    ) -> Any:
        """Wait for the task to finish and return its value.

        Raises :class:`~petiole.errors.ResultTimeout` (a ``TimeoutError``) after
        ``timeout`` seconds, which bound the whole call: also when the result
        store was unreachable all along (the backend's message then says so).
        Its message says where the task stands (:meth:`why`), worked out in at
        most a second more.
        A backend may raise :class:`~petiole.errors.ResultsLost` when the store
        lost its data while this waited. A failed (or revoked) task's exception
        is re-raised, with the remote traceback attached as a note, unless
        ``propagate`` is False: then it is returned.

        ``interval``: seconds between two reads of a result store that polls;
        ignored by one that pushes (Redis, rpc://, memory), which wakes the wait
        at once. Unset (Celery's default is 0.5 s), the backend polls at its own
        pace. ``callback(task_id, value)`` runs once the task is ready, before
        this returns (not for a failure that is raised). ``no_ack``,
        ``follow_parents`` and ``disable_sync_subtasks`` are accepted for Celery
        code and change nothing: results are not messages to acknowledge; a
        failed chain step already fails the steps after it, so their ``get()``
        raises its error; and Petiole does not refuse a wait inside a task (one
        holds a pool slot while it waits: prefer a chain or a chord).
        """
        record = self._ready_record
        if record is None:
            started = time.monotonic()
            found = wait_ready(self.app, [self.id], timeout_s=timeout, interval_s=interval)
            record = found.get(self.id)
            if record is None or not record.ready:
                waited = time.monotonic() - started
                raise ResultTimeout(
                    f"not ready after {waited:.1f} s: {self._explain(record)}"
                    f"{waiting_inside_a_task()}"
                )
            self._seen_ready(record)
        return self._outcome(record, propagate, callback)

    wait = get
    """The same as :meth:`get` (deprecated in Celery, kept as an alias here)."""

    def _explain(self, record: ResultRecord | None) -> str:
        """:meth:`why`, from what a timed-out wait saw and the broker, in bounded
        time: re-reading an unreachable store would retry past the timeout."""
        return diagnosis.explain_within(
            _WHY_BUDGET_S,
            self.app,
            self.id,
            task_name=self.task_name,
            queue=self._sent_queue,
            record=record,
        )

    def maybe_throw(self, propagate: bool = True, callback: ValueCallback | None = None) -> Any:
        """Without waiting: raise the task's exception if it failed or was revoked
        (and ``propagate``); otherwise call ``callback(task_id, value)`` if given,
        and return what :attr:`result` would."""
        return self._outcome(self._record(), propagate, callback)

    def collect(
        self, timeout: float | None = None, *, propagate: bool = True, interval: float | None = None
    ) -> Iterator[tuple[AsyncResult, Any]]:
        """Yield ``(result, value)`` for this task, then for each task it sent (its
        :attr:`children`, then theirs: breadth first), waiting for each in turn.

        ``timeout`` bounds the whole walk; ``propagate`` and ``interval`` are
        :meth:`get`'s. A task reached twice is yielded once. Celery's
        ``intermediate`` argument has no counterpart: every node is waited for.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pending: deque[AsyncResult] = deque([self])
        seen = {self.id}
        while pending:
            node = pending.popleft()
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = node.get(remaining, propagate=propagate, interval=interval)
            yield node, value
            for child in node.children:
                if child.id not in seen:
                    seen.add(child.id)
                    pending.append(child)

    def then(self: A, callback: Callable[[A], object], on_error: OnError | None = None) -> A:
        """Run ``callback(this handle)`` once the task is ready; return this handle.

        It runs in the thread of the first call on this handle that finds the
        task ready (:meth:`get`, :meth:`wait`, :meth:`ready`, :attr:`state`, a
        :class:`ResultSet` holding it ...), before that call returns; or at once,
        in this thread, if the handle knows it is ready already (an eager
        result, an earlier ``get()``). This does no I/O and starts no thread.
        If ``callback`` raises, ``on_error(exc)`` runs; without ``on_error`` the
        exception propagates from the call that ran it. Full rules:
        :mod:`petiole.result_set`. Celery's ``then`` returns a promise; this
        returns the handle, so calls chain.
        """
        with _MAKING_CALLBACKS:
            if self._on_ready is None:
                self._on_ready = ReadyCallbacks()
        self._on_ready.add(self, callback, on_error)
        if self._ready_record is not None:
            # Seen ready before this handle had callbacks: _seen_ready had none to run.
            self._on_ready.fire(self)
        return self

    # -- identity and housekeeping ---------------------------------------------------------

    def as_tuple(self) -> tuple[tuple[str, None], None]:
        """``((id, None), None)``, which :func:`result_from_tuple` turns back into a
        handle (also after a JSON round trip). Celery puts the parent's tuple
        where this has the first ``None``; Petiole reads the parent from the
        store instead."""
        return ((self.id, None), None)

    def forget(self) -> None:
        """Delete this result and, recursively, its children's (a whole workflow
        from its root). Celery forgets the parents instead."""
        ids: list[str] = []
        pending, seen = [self.id], set()
        while pending:
            task_id = pending.pop()
            if task_id in seen:
                continue
            seen.add(task_id)
            ids.append(task_id)
            record = self.app.backend.get(task_id)
            if record is not None:
                pending.extend(str(c) for c in record.meta.get("children") or ())
        self._ready_record = None
        self.app.backend.forget(ids)

    def revoke(
        self, *, terminate: bool = False, reason: str = "revoked", **celery_options: Any
    ) -> None:
        """See :meth:`Petiole.revoke`."""
        self.app.revoke(self.id, terminate=terminate, reason=reason, **celery_options)
        self._ready_record = None


class EagerResult(AsyncResult):
    """The result of a task run in the caller's process (eager mode); needs no backend."""

    def __init__(self, task_id: str, app: ResultsApp, record: ResultRecord) -> None:
        super().__init__(task_id, app)
        self._seen_ready(record)

    def forget(self) -> None:
        pass


class GroupResult(ResultSet[AsyncResult]):
    """The results of a group's members, in the order the group listed them: a
    :class:`ResultSet` with the group's id.

    ``save()`` stores the list of member ids under the group's id, so
    ``GroupResult.restore(group_id, app)`` rebuilds it anywhere (groups and
    chords save themselves when sent).
    """

    def __init__(
        self, group_id: str, results: Iterable[AsyncResult] = (), app: ResultsApp | None = None
    ) -> None:
        super().__init__(results, app)
        self.id = group_id

    def __repr__(self) -> str:
        return f"<GroupResult {self.id} {self.completed_count()}/{len(self)}>"

    def __str__(self) -> str:
        return self.id

    def __eq__(self, other: object) -> bool:
        """Equal to a group result of the same id and members, and to its id."""
        if isinstance(other, GroupResult):
            return other.id == self.id and other.ids == self.ids
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:  # type: ignore[override]  # by id, which does not change
        return hash(self.id)

    @property
    def children(self) -> list[AsyncResult]:
        """The members (Celery's spelling)."""
        return list(self.results)

    def _label(self) -> str:
        return f"group {self.id}"

    def save(self) -> None:
        serializer = self.app.result_serializer
        self.app.store_result(
            ResultRecord(
                self.id,
                states.SUCCESS,
                serializer.dumps(self.ids),
                serializer.content_type,
                None,
                time.time(),
                {"kind": "group"},
            )
        )

    @classmethod
    def restore(cls, group_id: str, app: ResultsApp | None = None) -> GroupResult:
        """The group saved under ``group_id`` (by the current app's backend without ``app``)."""
        if app is None:
            app = cast(ResultsApp, app_context.required())
        record = app.backend.get(group_id)
        if record is None or record.meta.get("kind") != "group":
            raise ResultTimeout(f"no saved group {group_id} (never saved, or expired)")
        ids = app.decode_result(record)
        return cls(group_id, [AsyncResult(str(i), app) for i in ids], app)

    def delete(self) -> None:
        """Delete what :meth:`save` stored; the members' results stay."""
        self.app.backend.forget([self.id])

    def forget(self) -> None:
        """Delete the members' results (and their children's), the group and its chord state."""
        super().forget()
        self.delete()
        try:
            store = self.app.coordination
        except CoordinationUnavailable:
            return  # no store, so no chord could have kept state
        store.delete_keys([f"petiole:chord:{self.id}", f"petiole:chord:{self.id}:fired"])

    def as_tuple(self) -> tuple[tuple[str, None], list[tuple[tuple[str, None], None]]]:
        """``((id, None), [member tuples])``, for :func:`result_from_tuple`."""
        return ((self.id, None), [r.as_tuple() for r in self.results])


def result_from_tuple(data: Any, app: ResultsApp) -> AsyncResult | GroupResult:
    """The handle an ``as_tuple()`` value describes: after a JSON round trip
    too (lists for tuples), and in Celery's shape, whose parent part is ignored
    (the store knows each task's parent)."""
    try:
        node, members = data
        task_id = node[0] if isinstance(node, (list, tuple)) else node
    except (TypeError, ValueError, IndexError):
        raise ValueError(
            f"not a result tuple: {data!r}; expected ((id, parent), None) for a task "
            "or ((id, parent), [member tuples]) for a group, as as_tuple() makes"
        ) from None
    if not isinstance(task_id, str):
        raise ValueError(f"not a result tuple: {data!r}; its id {task_id!r} is not a string")
    if members is None:
        return AsyncResult(task_id, app)
    results: list[AsyncResult] = []
    for member in members:
        built = result_from_tuple(member, app)
        if isinstance(built, GroupResult):
            raise ValueError(
                f"group {task_id} holds group {built.id}: a GroupResult's members are tasks"
            )
        results.append(built)
    return GroupResult(task_id, results, app)
