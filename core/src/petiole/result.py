"""AsyncResult: a handle on a task's state and result, by task id."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from petiole import diagnosis, remote_errors, states
from petiole.backend import ResultRecord
from petiole.coordination import CoordinationUnavailable
from petiole.errors import ResultTimeout, TaskRevoked
from petiole.ports import ResultsApp

# How long a timed-out get() may spend saying why, beyond its timeout.
_WHY_BUDGET_S = 1.0


class AsyncResult:
    """The state and outcome of one task. Reading an attribute asks the backend
    each time (until the task is ready: a ready record is cached)."""

    def __init__(
        self,
        task_id: str,
        app: ResultsApp,
        *,
        task_name: str | None = None,
        queue: str | None = None,
    ) -> None:
        self.id = task_id
        self.app = app
        # Known when this handle came from sending the task: they make why() precise.
        self.task_name = task_name
        self.queue = queue
        self._ready_record: ResultRecord | None = None

    def __repr__(self) -> str:
        return f"<AsyncResult {self.id} {self.state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncResult) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def task_id(self) -> str:
        return self.id

    def _record(self) -> ResultRecord | None:
        if self._ready_record is not None:
            return self._ready_record
        record = self.app.backend.get(self.id)
        if record is not None and record.ready:
            self._ready_record = record
        return record

    @property
    def state(self) -> str:
        record = self._record()
        return record.state if record is not None else states.PENDING

    status = state

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def why(self) -> str:
        """Where the task stands and what to check next, in one sentence: its state,
        and for a PENDING task whether its message waits in a queue (which, on which
        broker) or was dead-lettered (with the reason). Best-effort; never raises."""
        return diagnosis.explain(self.app, self.id, task_name=self.task_name, queue=self.queue)

    @property
    def result(self) -> Any:
        """The return value once SUCCESS; the exception for FAILURE, RETRY and
        REVOKED; ``None`` before that."""
        record = self._record()
        return None if record is None else self._value(record)

    @property
    def traceback(self) -> str | None:
        record = self._record()
        return None if record is None else record.traceback

    @property
    def date_done(self) -> float | None:
        record = self._record()
        return None if record is None else record.date_done

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

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """Wait for the task to finish and return its value.

        Raises :class:`~petiole.errors.ResultTimeout` (a ``TimeoutError``) after
        ``timeout`` seconds, which bound the whole call: also when the result
        store was unreachable all along (the backend's message then says so).
        Its message says where the task stands (:meth:`why`), worked out in at
        most a second more.
        A backend may raise :class:`~petiole.errors.ResultsLost` when the store
        lost its data while this waited. A failed task's exception is re-raised,
        with the remote traceback attached as a note, unless ``propagate`` is
        False (then it is returned).
        """
        record = self._ready_record
        if record is None:
            started = time.monotonic()
            found = self.app.backend.wait([self.id], timeout_s=timeout)
            record = found.get(self.id)
            if record is None or not record.ready:
                waited = time.monotonic() - started
                # Where it stands, from what the wait saw and the broker, in bounded
                # time: re-reading an unreachable store would retry past the timeout.
                why = diagnosis.explain_within(
                    _WHY_BUDGET_S,
                    self.app,
                    self.id,
                    task_name=self.task_name,
                    queue=self.queue,
                    record=record,
                )
                raise ResultTimeout(f"not ready after {waited:.1f} s: {why}")
            self._ready_record = record
        value = self._value(record)
        if record.state != states.SUCCESS and propagate and isinstance(value, BaseException):
            raise value
        return value

    @property
    def meta(self) -> Mapping[str, Any]:
        """Extras the worker stored: task name, worker, queue, parent, children, ..."""
        record = self._record()
        return {} if record is None else record.meta

    @property
    def parent(self) -> AsyncResult | None:
        """The task that sent this one (or the previous step of its chain)."""
        parent_id = self.meta.get("parent_id")
        return AsyncResult(str(parent_id), self.app) if parent_id else None

    @property
    def children(self) -> list[AsyncResult]:
        """Tasks this one sent while running, and the next step of its chain."""
        return [AsyncResult(str(c), self.app) for c in self.meta.get("children") or ()]

    def forget(self) -> None:
        """Delete this result and, recursively, its children's (a whole workflow from its root)."""
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

    def revoke(self, *, terminate: bool = False, reason: str = "revoked") -> None:
        """See :meth:`Petiole.revoke`."""
        self.app.revoke(self.id, terminate=terminate, reason=reason)
        self._ready_record = None


class EagerResult(AsyncResult):
    """The result of a task run in the caller's process (eager mode); needs no backend."""

    def __init__(self, task_id: str, app: ResultsApp, record: ResultRecord) -> None:
        super().__init__(task_id, app)
        self._ready_record = record

    def forget(self) -> None:
        pass


class GroupResult:
    """The results of a group's members, in the order the group listed them.

    ``save()`` stores the list of member ids under the group's id, so
    ``GroupResult.restore(group_id, app)`` rebuilds it anywhere (groups and
    chords save themselves when sent).
    """

    def __init__(self, group_id: str, results: Sequence[AsyncResult], app: ResultsApp) -> None:
        self.id = group_id
        self.results = list(results)
        self.app = app

    def __repr__(self) -> str:
        return f"<GroupResult {self.id} {self.completed_count()}/{len(self)}>"

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[AsyncResult]:
        return iter(self.results)

    def __getitem__(self, index: int) -> AsyncResult:
        return self.results[index]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.results]

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
    def restore(cls, group_id: str, app: ResultsApp) -> GroupResult:
        record = app.backend.get(group_id)
        if record is None or record.meta.get("kind") != "group":
            raise ResultTimeout(f"no saved group {group_id} (never saved, or expired)")
        ids = app.decode_result(record)
        return cls(group_id, [AsyncResult(str(i), app) for i in ids], app)

    def _records(self) -> dict[str, ResultRecord]:
        return self.app.backend.get_many(self.ids)

    def completed_count(self) -> int:
        """How many members succeeded."""
        return sum(1 for r in self._records().values() if r.state == states.SUCCESS)

    def ready(self) -> bool:
        records = self._records()
        return all(i in records and records[i].ready for i in self.ids)

    def successful(self) -> bool:
        records = self._records()
        return all(i in records and records[i].state == states.SUCCESS for i in self.ids)

    def failed(self) -> bool:
        return any(r.state == states.FAILURE for r in self._records().values())

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> list[Any]:
        """Wait for every member; return their values in order. With ``propagate``,
        the first failed member's exception (in group order) is raised."""
        started = time.monotonic()
        # Members already known to be ready (eager results, earlier gets) need no round trip.
        found = {r.id: r._ready_record for r in self.results if r._ready_record is not None}
        unknown = [i for i in self.ids if i not in found]
        if unknown:
            found.update(self.app.backend.wait(unknown, timeout_s=timeout))
        missing = [i for i in self.ids if i not in found]
        if missing:
            raise ResultTimeout(
                f"group {self.id}: {len(missing)} of {len(self)} members not ready after "
                f"{time.monotonic() - started:.1f} s"
            )
        values = []
        for result in self.results:
            result._ready_record = found[result.id]
            values.append(result.get(propagate=propagate))
        return values

    join = get

    def forget(self) -> None:
        """Delete the members' results (and their children's), the group and its chord state."""
        for result in self.results:
            result.forget()
        self.app.backend.forget([self.id])
        try:
            store = self.app.coordination
        except CoordinationUnavailable:
            return  # no store, so no chord could have kept state
        store.delete_keys([f"petiole:chord:{self.id}", f"petiole:chord:{self.id}:fired"])
