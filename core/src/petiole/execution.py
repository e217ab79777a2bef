"""Running one task message to completion: the part of the worker that pools call.

:class:`TaskRunner` turns a job into an :class:`~petiole.pools.base.Outcome`:
it deserializes the body (only content types the worker accepts ever reach
here), calls the task with its request context, stores the result, and fires
the per-task hooks. It never raises: every failure becomes an outcome the
consumer knows how to settle (ack, dead-letter, requeue).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback as tb_module
from typing import TYPE_CHECKING, Any

from petiole import remote_errors, states
from petiole.backend import ResultRecord
from petiole.errors import PetioleError, SerializationError
from petiole.plugins import implemented
from petiole.pools.base import ACK, REJECT, REQUEUE, Job, Outcome
from petiole.request import Request, current_request

if TYPE_CHECKING:
    from petiole.app import Petiole
    from petiole.envelope import Envelope
    from petiole.task import Task

logger = logging.getLogger("petiole.worker")

# When the result store is down, the message goes back and is retried this much later.
RESULT_STORE_RETRY_S = 5.0


def default_hostname() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Rejected(Exception):
    """A message that can never run: it goes to the dead-letter store with this reason."""


class TaskRunner:
    def __init__(self, app: Petiole, *, hostname: str | None = None) -> None:
        self.app = app
        self.app_path = app.main_path
        self.hostname = hostname or default_hostname()
        hook = app.plugins.hook
        # Resolved once: a hook nobody implements costs one `is None` test per task.
        self._prerun = implemented(hook.petiole_task_prerun)
        self._postrun = implemented(hook.petiole_task_postrun)
        self._failure = implemented(hook.petiole_task_failure)

    def run(self, job: Job) -> Outcome:
        started = time.perf_counter()
        try:
            state, record = self.execute(
                job.envelope, queue=job.queue, delivery_count=job.delivery_count
            )
        except Rejected as exc:
            return Outcome(REJECT, reason=str(exc))
        if record is not None:
            try:
                self.app.store_result(record)
            except PetioleError as exc:
                logger.error(
                    "could not store the result of task %s (%s); the message goes back to "
                    "the queue and the task will run again in %.0f s",
                    job.envelope.task_id,
                    exc,
                    RESULT_STORE_RETRY_S,
                )
                return Outcome(REQUEUE, state=state, reason=str(exc), delay_s=RESULT_STORE_RETRY_S)
        return Outcome(ACK, state=state, runtime_s=time.perf_counter() - started)

    def execute(
        self, envelope: Envelope, *, queue: str, delivery_count: int, eager: bool = False
    ) -> tuple[str, ResultRecord | None]:
        """Call the task; return its final state and the record to store (None when
        results are ignored). Raises :class:`Rejected` for a message that cannot run."""
        app = self.app
        task = app.tasks.get(envelope.task_name)
        if task is None:
            raise Rejected(
                f"task {envelope.task_name!r} is not registered on this worker; start a worker "
                "whose app defines it, then run `petiole dlq requeue`"
            )
        args, kwargs = self._decode_body(envelope)
        headers = envelope.headers
        request = Request(
            id=envelope.task_id,
            task=task.name,
            args=tuple(args),
            kwargs=kwargs,
            retries=headers.get("retries", 0),
            delivery_count=delivery_count,
            queue=queue,
            eta=headers.get("eta"),
            expires=headers.get("expires"),
            root_id=headers.get("root_id"),
            parent_id=headers.get("parent_id"),
            group_id=headers.get("group_id"),
            headers=headers,
            hostname=self.hostname,
            eager=eager,
        )
        ignore_result = (
            app.settings.ignore_result if task.ignore_result is None else task.ignore_result
        )
        if app.settings.track_started and not ignore_result and not eager:
            app.store_result(
                ResultRecord(request.id, states.STARTED, meta=self._meta(task, request))
            )
        state, value, traceback = self._call(task, request, args, kwargs)
        if ignore_result and state == states.SUCCESS:
            return state, None
        return state, self._record(task, request, state, value, traceback)

    def _decode_body(self, envelope: Envelope) -> tuple[list[Any], dict[str, Any]]:
        try:
            serializer = self.app.serializer_for_content_type(envelope.content_type)
            body = serializer.loads(envelope.body)
        except PetioleError as exc:
            raise Rejected(f"undecodable body ({envelope.content_type}): {exc}") from exc
        if (
            not isinstance(body, list)
            or len(body) != 2
            or not isinstance(body[0], list)
            or not isinstance(body[1], dict)
        ):
            raise Rejected("message body must be [args, kwargs] (a list and an object)")
        return body[0], body[1]

    def _call(
        self, task: Task[Any, Any], request: Request, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[str, Any, str | None]:
        token = current_request.set(request)
        try:
            if self._prerun is not None:
                self._prerun(task=task, request=request)
            try:
                retval = task(*args, **kwargs)
            except Exception as exc:
                traceback = "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))
                if self._postrun is not None:
                    self._postrun(task=task, request=request, state=states.FAILURE, retval=exc)
                if self._failure is not None:
                    self._failure(task=task, request=request, exc=exc, traceback=traceback)
                return states.FAILURE, exc, traceback
            if self._postrun is not None:
                self._postrun(task=task, request=request, state=states.SUCCESS, retval=retval)
            return states.SUCCESS, retval, None
        finally:
            current_request.reset(token)

    def _meta(self, task: Task[Any, Any], request: Request) -> dict[str, Any]:
        meta: dict[str, Any] = {"task": task.name, "worker": self.hostname, "queue": request.queue}
        if request.group_id:
            meta["group_id"] = request.group_id
        if request.parent_id:
            meta["parent_id"] = request.parent_id
        return meta

    def _record(
        self, task: Task[Any, Any], request: Request, state: str, value: Any, traceback: str | None
    ) -> ResultRecord:
        serializer = self.app.result_serializer
        meta = self._meta(task, request)
        if state == states.SUCCESS:
            try:
                payload = serializer.dumps(value)
            except SerializationError as exc:
                state, traceback = states.FAILURE, None
                payload = serializer.dumps(
                    remote_errors.describe(
                        SerializationError(
                            f"task {task.name} returned a value the {serializer.name} "
                            f"serializer cannot store: {exc}"
                        )
                    )
                )
        else:
            description = remote_errors.describe(value)
            try:
                payload = serializer.dumps(description)
            except SerializationError:
                # Arguments that cannot travel are dropped; type and message still do.
                description["args"] = None
                payload = serializer.dumps(description)
        return ResultRecord(
            request.id, state, payload, serializer.content_type, traceback, time.time(), meta
        )
