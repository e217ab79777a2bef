"""AsyncResult: a handle on a task's state and result, by task id."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from petiole import remote_errors, states
from petiole.backend import ResultRecord
from petiole.errors import ResultTimeout, TaskRevoked

if TYPE_CHECKING:
    from petiole.app import Petiole


class AsyncResult:
    """The state and outcome of one task. Reading an attribute asks the backend
    each time (until the task is ready: a ready record is cached)."""

    def __init__(self, task_id: str, app: Petiole) -> None:
        self.id = task_id
        self.app = app
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
        if not record.payload:
            return None
        value = self.app.serializer_for_content_type(record.content_type).loads(record.payload)
        if record.state in states.EXCEPTION_STATES:
            if record.state == states.REVOKED:
                reason = value.get("message", "revoked") if isinstance(value, dict) else value
                return TaskRevoked(f"task {self.id} was revoked: {reason}")
            return remote_errors.rebuild(value, record.traceback)
        return value

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """Wait for the task to finish and return its value.

        Raises :class:`~petiole.errors.ResultTimeout` (a ``TimeoutError``) after
        ``timeout`` seconds. A failed task's exception is re-raised, with the
        remote traceback attached as a note, unless ``propagate`` is False (then
        it is returned).
        """
        record = self._ready_record
        if record is None:
            started = time.monotonic()
            found = self.app.backend.wait([self.id], timeout_s=timeout)
            record = found.get(self.id)
            if record is None or not record.ready:
                waited = time.monotonic() - started
                raise ResultTimeout(
                    f"task {self.id} not ready after {waited:.1f} s (state {self.state})"
                )
            self._ready_record = record
        value = self._value(record)
        if record.state != states.SUCCESS and propagate and isinstance(value, BaseException):
            raise value
        return value

    def forget(self) -> None:
        self._ready_record = None
        self.app.backend.forget([self.id])

    def revoke(self, *, terminate: bool = False, reason: str = "revoked") -> None:
        """See :meth:`Petiole.revoke`."""
        self.app.revoke(self.id, terminate=terminate, reason=reason)
        self._ready_record = None


class EagerResult(AsyncResult):
    """The result of a task run in the caller's process (eager mode); needs no backend."""

    def __init__(self, task_id: str, app: Petiole, record: ResultRecord) -> None:
        super().__init__(task_id, app)
        self._ready_record = record

    def forget(self) -> None:
        pass
