"""Waiting for many results at once: :class:`ResultSet`, and the two things every
result handle shares with it — waiting (pushed, or polled every ``interval``)
and ``then()`` callbacks.

**Which thread runs a ``then()`` callback, and when.** Petiole starts no thread
for callbacks. A handle (an :class:`~petiole.result.AsyncResult` object, or a
set) is *seen ready* by the first call on it that reads a ready state from the
result store: ``get()``, ``wait()``, ``join()``, ``ready()``, ``.state``,
``.result`` ... on the handle itself or, for a task's handle, on a set that
holds it. That call runs the handle's callbacks, in the order they were
registered, in its own thread, before it returns. A callback registered on a
handle already seen ready runs at once, in the thread calling ``then()``,
before ``then()`` returns. No lock is held while a callback runs, so it may use
the handle (``get()`` returns at once), register more callbacks, or block
without stopping anything but its own thread. Each callback runs once. A
handle nobody reads never runs its callbacks; two handle objects of one task
have callbacks of their own.

An exception raised by a callback goes to its ``on_error`` if it has one;
without one, it propagates from the call that ran the callback, once the
handle's other callbacks have run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

from petiole import states
from petiole.backend import ResultRecord
from petiole.errors import ResultTimeout
from petiole.ports import ResultsApp
from petiole.request import current_request

logger = logging.getLogger("petiole.worker")

H = TypeVar("H")
OnError = Callable[[Exception], object]
ValueCallback = Callable[[str, Any], object]
"""``callback(task_id, value)`` of ``get()``/``join()``, as in Celery."""


def wait_ready(
    app: ResultsApp,
    task_ids: Sequence[str],
    *,
    timeout_s: float | None,
    interval_s: float | None,
) -> dict[str, ResultRecord]:
    """The ready records of ``task_ids``: all of them, or those ready when
    ``timeout_s`` passed (``None`` waits forever).

    A backend that pushes (``capabilities.push_wait``) is waited on once, and
    ``interval_s`` is ignored: it is woken by each store. Otherwise, with no
    ``interval_s``, the backend's own ``wait`` polls at its own pace (SQLite's
    ``poll_interval_ms`` option, say); with one, the store is read
    every ``interval_s`` seconds — a client that waits long may read less often.
    """
    if interval_s is not None and not interval_s > 0:
        raise ValueError(f"interval must be a positive number of seconds, not {interval_s!r}")
    if timeout_s is None:
        _warn_of_an_endless_wait_inside_a_task()
    backend = app.backend
    if interval_s is None or backend.capabilities.push_wait:
        return backend.wait(task_ids, timeout_s=timeout_s)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    pending = list(dict.fromkeys(task_ids))
    ready: dict[str, ResultRecord] = {}
    while True:
        ready.update((i, r) for i, r in backend.get_many(pending).items() if r.ready)
        pending = [i for i in pending if i not in ready]
        remaining = None if deadline is None else deadline - time.monotonic()
        if not pending or (remaining is not None and remaining <= 0):
            return ready
        # A poll, not a synchronization: the caller asked to read this seldom.
        time.sleep(interval_s if remaining is None else min(interval_s, remaining))


class ReadyCallbacks(Generic[H]):
    """The ``then()`` callbacks of one handle (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[tuple[Callable[[H], object], OnError | None]] = []
        self._seen_ready = False

    def add(self, handle: H, callback: Callable[[H], object], on_error: OnError | None) -> None:
        """Keep ``callback`` until :meth:`fire`; run it now if that already happened."""
        with self._lock:
            if not self._seen_ready:
                self._waiting.append((callback, on_error))
                return
        _run(handle, [(callback, on_error)])

    def fire(self, handle: H) -> None:
        """``handle`` is seen ready: run the callbacks kept, the first time only."""
        with self._lock:
            if self._seen_ready:
                return
            self._seen_ready = True
            waiting, self._waiting = self._waiting, []
        _run(handle, waiting)


def _run(handle: H, callbacks: Sequence[tuple[Callable[[H], object], OnError | None]]) -> None:
    errors: list[Exception] = []
    for callback, on_error in callbacks:
        try:
            callback(handle)
        except Exception as exc:
            if on_error is None:
                errors.append(exc)
                continue
            try:
                on_error(exc)
            except Exception as again:
                errors.append(again)
    if errors:
        first = errors[0]
        if len(errors) > 1:
            note = f"{len(errors) - 1} more then() callback(s) raised too: {errors[1:]!r}"
            # Python 3.10 has no add_note; the note is for people, so skip it there.
            add_note = getattr(first, "add_note", None)
            if add_note is not None:
                add_note(note)
        raise first


class Member(Protocol):
    """What a :class:`ResultSet` needs of its members (:class:`~petiole.result.AsyncResult`)."""

    @property
    def id(self) -> str: ...

    @property
    def app(self) -> ResultsApp: ...

    def get(
        self, timeout: float | None = None, *, propagate: bool = True, interval: float | None = None
    ) -> Any: ...

    def maybe_throw(self, propagate: bool = True, callback: ValueCallback | None = None) -> Any: ...

    def forget(self) -> None: ...

    def _known_ready(self) -> ResultRecord | None:
        """The ready record this handle holds, without asking the store."""
        ...

    def _seen_ready(self, record: ResultRecord) -> None:
        """Hold ``record`` (ready) and run the handle's ``then()`` callbacks."""
        ...

    def _explain(self, record: ResultRecord | None) -> str:
        """Why the task is not ready, in about a second at most (``record``: what the wait saw)."""
        ...


M = TypeVar("M", bound=Member)
S = TypeVar("S", bound="ResultSet[Any]")


class ResultSet(Generic[M]):
    """Several results handled as one, in the order they were given (Celery's ``ResultSet``).

    ``results`` is the list of members. ``app`` is the members' app (the first
    member's when not given): every member must belong to it, since the set
    waits for them all through its result backend. A set is not safe to change
    from several threads at once; reading it is.
    """

    def __init__(self, results: Iterable[M] = (), app: ResultsApp | None = None) -> None:
        self.results: list[M] = list(results)
        self._app = app
        self._on_ready: ReadyCallbacks[Any] = ReadyCallbacks()

    @property
    def app(self) -> ResultsApp:
        if self._app is not None:
            return self._app
        if self.results:
            return self.results[0].app
        raise ValueError("this result set has no members and no app: pass app= to make one")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{', '.join(self.ids)}]>"

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[M]:
        return iter(self.results)

    def __getitem__(self, index: int) -> M:
        return self.results[index]

    def __contains__(self, item: object) -> bool:
        wanted = item if isinstance(item, str) else getattr(item, "id", None)
        return any(r.id == wanted for r in self.results)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultSet):
            return self.ids == other.ids
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # it changes: add(), discard(), ...

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.results]

    # -- membership -----------------------------------------------------------------------

    def add(self, result: M) -> None:
        """Add ``result`` at the end, unless a member has its id already."""
        if result not in self:
            self.results.append(result)

    def update(self, results: Iterable[M]) -> None:
        """:meth:`add` each of ``results``."""
        for result in results:
            self.add(result)

    def remove(self, result: M | str) -> None:
        """Remove the member with the id of ``result`` (a handle or a task id).

        Raises ``KeyError`` if there is none; :meth:`discard` does not.
        """
        task_id = result if isinstance(result, str) else result.id
        for index, member in enumerate(self.results):
            if member.id == task_id:
                del self.results[index]
                return
        raise KeyError(f"task {task_id} is not a member of {self!r}")

    def discard(self, result: M | str) -> None:
        """Remove the member with the id of ``result`` if there is one."""
        with contextlib.suppress(KeyError):
            self.remove(result)

    def clear(self) -> None:
        self.results.clear()

    # -- state, in one read of the store ----------------------------------------------

    def _records(self) -> dict[str, ResultRecord]:
        """Records of the members that have one: those already known ready, and
        the others read in one ``get_many``."""
        found = {r.id: rec for r in self.results if (rec := r._known_ready()) is not None}
        unknown = [r for r in self.results if r.id not in found]
        if unknown:
            found.update(self.app.backend.get_many([r.id for r in unknown]))
            for member in unknown:
                record = found.get(member.id)
                if record is not None and record.ready:
                    member._seen_ready(record)
        self._fire_if_ready()
        return found

    def _fire_if_ready(self) -> None:
        if all(r._known_ready() is not None for r in self.results):
            self._on_ready.fire(self)

    def ready(self) -> bool:
        """Whether every member is ready (SUCCESS, FAILURE or REVOKED)."""
        records = self._records()
        return all(i in records and records[i].ready for i in self.ids)

    def waiting(self) -> bool:
        """Whether some member is not ready yet."""
        return not self.ready()

    def successful(self) -> bool:
        """Whether every member succeeded."""
        records = self._records()
        return all(i in records and records[i].state == states.SUCCESS for i in self.ids)

    def failed(self) -> bool:
        """Whether some member failed (FAILURE; a REVOKED member is not a failure)."""
        return any(r.state == states.FAILURE for r in self._records().values())

    def completed_count(self) -> int:
        """How many members succeeded (Celery's meaning of "completed")."""
        return sum(1 for r in self._records().values() if r.state == states.SUCCESS)

    def maybe_throw(self, propagate: bool = True, callback: ValueCallback | None = None) -> None:
        """``maybe_throw`` of each member in order, without waiting (see ``AsyncResult``)."""
        self._records()  # one read for all, rather than one per member
        for member in self.results:
            member.maybe_throw(propagate, callback)

    # -- waiting ---------------------------------------------------------------------------

    def get(
        self,
        timeout: float | None = None,
        *,
        propagate: bool = True,
        interval: float | None = None,
        callback: ValueCallback | None = None,
        no_ack: bool = True,
        disable_sync_subtasks: bool = True,
    ) -> list[Any]:
        """Wait for every member; return their values in order. The same as
        :meth:`join_native` (Celery's ``get`` uses it where the backend can)."""
        return self.join_native(timeout, propagate=propagate, interval=interval, callback=callback)

    def join_native(
        self,
        timeout: float | None = None,
        *,
        propagate: bool = True,
        interval: float | None = None,
        callback: ValueCallback | None = None,
        no_ack: bool = True,
        disable_sync_subtasks: bool = True,
    ) -> list[Any]:
        """Wait for every member at once, with one backend ``wait`` for them all
        (woken by the store where it pushes: Redis, rpc://, memory; batched reads
        where it polls), then return their values in order.

        ``timeout`` bounds the whole call: :class:`~petiole.errors.ResultTimeout`
        says how many members were not ready and where the first stands. With
        ``propagate``, the first failed member's exception (in set order) is
        raised; without, it takes the member's place in the list. ``interval``:
        see :func:`wait_ready`. ``callback(task_id, value)`` runs for each member
        in set order once all are ready (Celery runs it as each arrives; use
        :meth:`join` for that), and the values are returned as well.
        ``no_ack`` and ``disable_sync_subtasks`` are accepted for Celery code and
        change nothing: results are not messages to acknowledge, and Petiole does
        not refuse a wait inside a task (which holds a pool slot while it waits).
        """
        started = time.monotonic()
        found = {r.id: rec for r in self.results if (rec := r._known_ready()) is not None}
        unknown = [r for r in self.results if r.id not in found]
        if unknown:
            ids = [r.id for r in unknown]
            found.update(wait_ready(self.app, ids, timeout_s=timeout, interval_s=interval))
        missing = [r for r in unknown if r.id not in found]
        if missing:
            raise ResultTimeout(self._timed_out(missing, time.monotonic() - started))
        for member in unknown:
            member._seen_ready(found[member.id])
        self._fire_if_ready()
        values = []
        for member in self.results:
            value = member.get(propagate=propagate)  # held: no round trip
            if callback is not None:
                callback(member.id, value)
            values.append(value)
        return values

    def join(
        self,
        timeout: float | None = None,
        *,
        propagate: bool = True,
        interval: float | None = None,
        callback: ValueCallback | None = None,
        no_ack: bool = True,
        disable_sync_subtasks: bool = True,
    ) -> list[Any]:
        """Wait for the members one after the other, in set order; return their values.

        Unlike :meth:`join_native`, ``callback(task_id, value)`` runs for each
        member as soon as it and those before it are ready, and with
        ``propagate`` a failed member raises without waiting for those after
        it. It costs one backend wait per member. ``timeout`` bounds the whole
        call; the :class:`~petiole.errors.ResultTimeout` is the member's that ran
        out of time. The other arguments are :meth:`join_native`'s.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for member in list(self.results):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = member.get(remaining, propagate=propagate, interval=interval)
            if callback is not None:
                callback(member.id, value)
            values.append(value)
        self._fire_if_ready()
        return values

    def then(self: S, callback: Callable[[S], object], on_error: OnError | None = None) -> S:
        """Run ``callback(this set)`` once every member is ready; return the set.

        It runs in the thread of the first call on the set that finds every
        member ready (:meth:`ready`, :meth:`get`, :meth:`join`,
        :meth:`completed_count` ...), or at once in this thread if the members
        are all known ready already (eager results, an earlier ``get()``). See
        the module docstring for the rules; a member added after it ran does not
        run it again. Celery's ``then`` returns a promise; this returns the set.
        """
        self._on_ready.add(self, callback, on_error)
        self._fire_if_ready()
        return self

    def _timed_out(self, missing: list[M], waited_s: float) -> str:
        why = missing[0]._explain(None)
        return (
            f"{self._label()}: {len(missing)} of {len(self)} members not ready after "
            f"{waited_s:.1f} s; the first: {why}{waiting_inside_a_task()}"
        )

    def _label(self) -> str:
        return "result set"

    # -- acting on every member ----------------------------------------------------------

    def revoke(self, *, terminate: bool = False, reason: str = "revoked") -> None:
        """Revoke every member at once (see :meth:`Petiole.revoke`)."""
        if self.results:
            self.app.revoke(self.ids, terminate=terminate, reason=reason)

    def forget(self) -> None:
        """Delete every member's result (and, as ``AsyncResult.forget`` does, its children's)."""
        for member in self.results:
            member.forget()


# Names of the tasks whose endless waits this process has warned of (once each).
_warned_of_endless_waits: set[str] = set()


def _warn_of_an_endless_wait_inside_a_task() -> None:
    """Once per task and process, a WARNING for a wait with no timeout inside a
    task on a worker: it holds a pool slot for as long as it waits, and one that
    waits for a task stuck behind such waits never ends (a timed wait's error
    says so: :func:`waiting_inside_a_task`)."""
    request = current_request.get()
    if request is None or not request.id or request.eager:
        return
    if request.task in _warned_of_endless_waits:
        return
    _warned_of_endless_waits.add(request.task)
    logger.warning(
        "task %s waits for a result with no timeout: it holds its pool slot meanwhile, "
        "and when every slot of the workers consuming the awaited task's queue is held "
        "by such a wait, nothing runs and the wait never ends (pass timeout=, or send a "
        "chain or a chord instead of waiting inside a task)",
        request.task,
    )


def waiting_inside_a_task() -> str:
    """A timed-out wait's note when it ran inside a task on a worker: the waiting
    task holds a pool slot, which the task it waits for may need (Celery refuses
    such a wait; Petiole allows it, so says what may have happened)."""
    request = current_request.get()
    if request is None or not request.id or request.eager:
        return ""
    return (
        f"; this wait ran inside task {request.task}[{request.id}], which holds a pool "
        "slot while it waits: when every slot of the workers consuming that queue is "
        "held by such a wait, the awaited task cannot start (send a chain or a chord "
        "instead of waiting inside a task, or give the waited-for tasks a queue and "
        "workers of their own)"
    )
