"""Running one task message to completion: the part of the worker that pools call.

:class:`TaskRunner` turns a job into an :class:`~petiole.pools.base.Outcome`:
it deserializes the body (only content types the worker accepts ever reach
here), calls the task with its request context and soft time limit, handles
retries, stores the result, and fires the per-task hooks. It never raises:
every failure becomes an outcome the consumer knows how to settle (ack,
dead-letter, requeue).
"""

from __future__ import annotations

import inspect
import logging
import os
import reprlib
import socket
import time
import traceback as tb_module
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from petiole import remote_errors, states
from petiole.backend import ResultRecord
from petiole.canvas.continuation import Continuation, planned_children
from petiole.envelope import IDENTITY, Envelope, Workflow
from petiole.errors import (
    ConfigError,
    PetioleError,
    PluginError,
    ResultTooLarge,
    Retry,
    SerializationError,
    SoftTimeLimitExceeded,
)
from petiole.logs import TASK_LOGGER, Verbatim
from petiole.plugins import PluginRegistry, implemented
from petiole.pools.base import ACK, REJECT, REQUEUE, Job, Outcome
from petiole.ports import ResultsApp
from petiole.producer import Producer
from petiole.request import Request, continuing_workflow, current_request
from petiole.sending import Sender
from petiole.serializers import Serializer
from petiole.task import ExceptionInfo, Task
from petiole.timelimits import soft_time_limit

logger = logging.getLogger(TASK_LOGGER)

# When the result store is down, the message goes back and is retried this much later.
RESULT_STORE_RETRY_S = 5.0


class RunnerApp(Producer, Protocol):
    """What running a task uses of its app: the registry, the body's decoding,
    the result store, the hooks, and the sender for retries and workflows."""

    @property
    def main_path(self) -> str | None: ...

    @property
    def plugins(self) -> PluginRegistry: ...

    @property
    def tasks(self) -> Mapping[str, Task[Any, Any]]: ...

    @property
    def sender(self) -> Sender: ...

    def decode_body(self, envelope: Envelope) -> bytes: ...

    def serializer_for_content_type(self, content_type: str) -> Serializer: ...


def default_hostname() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def resolve_time_limits(
    app: ResultsApp, task: Task[Any, Any] | None, envelope: Envelope
) -> tuple[float | None, float | None]:
    """(soft, hard) seconds for one call: the message's own, else the task's, else the app's."""
    settings = app.settings
    soft, hard = settings.soft_time_limit_s, settings.time_limit_s
    if task is not None:
        soft = (
            task.options.soft_time_limit_s if task.options.soft_time_limit_s is not None else soft
        )
        hard = task.options.time_limit_s if task.options.time_limit_s is not None else hard
    call_soft, call_hard = envelope.time_limits
    return (soft if call_soft is None else call_soft), (hard if call_hard is None else call_hard)


class Rejected(Exception):
    """A message that can never run: it goes to the dead-letter store with this reason.
    ``cause`` names the kind for the ``petiole_task_rejected`` hook."""

    def __init__(self, reason: str, *, cause: str = "undecodable") -> None:
        super().__init__(reason)
        self.cause = cause


def internal_error(job: Job, exc: BaseException) -> Outcome:
    """The outcome of a job the worker itself failed on (a bug, or a plugin breaking
    its contract): dead-lettered with the error, so it is neither lost nor retried
    forever, and the pool thread that ran it lives on."""
    logger.exception(
        "internal error running task %s[%s]; dead-lettering its message",
        job.envelope.task_name,
        job.envelope.task_id,
        exc_info=exc,
    )
    return Outcome(
        REJECT,
        reason=f"the worker failed on it: {type(exc).__name__}: {exc} "
        "(a bug in petiole or a plugin; `petiole dlq requeue` once fixed)",
    )


# Made once per task: plain slotted classes (a frozen dataclass's __init__ costs ~4x).
@dataclass(slots=True)
class _Prepared:
    task: Task[Any, Any]
    request: Request
    args: list[Any]
    kwargs: dict[str, Any]
    ignore_result: bool


# Errors continuing a workflow that no retry of the message can get past.
_NOT_TRANSIENT = (ConfigError, PluginError, SerializationError)


@dataclass(slots=True)
class _Called:
    state: str  # SUCCESS, FAILURE or RETRY
    value: Any  # return value, exception, or the Retry
    traceback: str | None = None
    payload: bytes | None = None  # a success's value, serialized for the result store


_RESULT_REPR = reprlib.Repr()
_RESULT_REPR.maxstring = _RESULT_REPR.maxother = 120


def _short_repr(value: Any) -> str:
    """A result as a log line shows it: a repr bounded in size and cost (results can
    be huge; reprlib shows the first items of a container, not all of them)."""
    try:
        return _RESULT_REPR.repr(value)
    except Exception as exc:  # a user __repr__ that fails must not fail the task
        return f"<unrepresentable {type(value).__name__}: {exc}>"


def _format(exc: BaseException) -> str:
    return "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


# Exact types a task commonly returns that are never awaitable: no isawaitable() per task
# (its last test, an ABC isinstance, is the slow one).
_NEVER_AWAITABLE = frozenset((type(None), int, str, float, bool, bytes, list, dict, tuple))


def _run_if_awaitable(retval: Any) -> Any:
    if inspect.isawaitable(retval):  # an async def task on a synchronous pool
        import asyncio

        return asyncio.run(_await(retval))
    return retval


class TaskRunner:
    def __init__(self, app: RunnerApp, *, hostname: str | None = None) -> None:
        self.app = app
        self.app_path = app.main_path
        self.hostname = hostname or default_hostname()
        hook = app.plugins.hook
        # Resolved once: a hook nobody implements costs one `is None` test per task.
        self._prerun = implemented(hook.petiole_task_prerun)
        self._postrun = implemented(hook.petiole_task_postrun)
        self._failure = implemented(hook.petiole_task_failure)
        self._retry = implemented(hook.petiole_task_retry)
        self._continuation = Continuation(app)
        self._info = logger.isEnabledFor(logging.INFO)

    # -- entry points ---------------------------------------------------------------

    def run(self, job: Job) -> Outcome:
        """Run a job in this thread (solo, threads and processes pools). Never raises."""
        try:
            started = time.perf_counter()
            prepared = self.begin(job)
            if isinstance(prepared, Outcome):
                return prepared
            called = self.call(prepared, soft_time_limit_s=job.soft_time_limit_s)
            return self.finish(prepared, called, started, defer=job.defer_result)
        except Exception as exc:
            return internal_error(job, exc)

    async def run_async(self, job: Job) -> Outcome:
        """Run a job on the running event loop (the asyncio pool).

        ``async def`` tasks run on the loop, cancelled at their soft (else hard)
        time limit; plain functions, and the result store's blocking calls, run
        in the loop's default executor so they never stall other tasks.
        """
        try:
            import asyncio  # here: a worker that runs no asyncio pool never loads it (~4 MB)

            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            prepared = self.begin(job)
            if isinstance(prepared, Outcome):
                return prepared
            if inspect.iscoroutinefunction(prepared.task.fn):
                limit = (
                    job.soft_time_limit_s if job.soft_time_limit_s is not None else job.time_limit_s
                )
                called = await self._call_async(prepared, limit)
            else:
                called = await loop.run_in_executor(
                    None, lambda: self.call(prepared, soft_time_limit_s=job.soft_time_limit_s)
                )
            return await loop.run_in_executor(None, self.finish, prepared, called, started)
        except Exception as exc:
            return internal_error(job, exc)

    def execute(
        self, envelope: Envelope, *, queue: str, delivery_count: int, eager: bool = False
    ) -> tuple[str, ResultRecord | None]:
        """Call the task here and now (eager mode); return its state and the record
        to store. Raises :class:`Rejected` for a message that cannot run."""
        prepared = self.prepare(envelope, queue=queue, delivery_count=delivery_count, eager=eager)
        task = prepared.task
        soft, _ = resolve_time_limits(self.app, task, envelope)
        called = self.call(prepared, soft_time_limit_s=soft)
        record = None
        if not (prepared.ignore_result and called.state == states.SUCCESS):
            record = self._record(prepared, called)
        self._continue(prepared, called)
        if task.has_handlers:
            self._run_handlers(prepared, called)
        return called.state, record

    # -- steps -----------------------------------------------------------------------

    def begin(self, job: Job) -> _Prepared | Outcome:
        """:meth:`prepare` a job, or the outcome that settles a job that cannot start:
        a message that can never run is dead-lettered, one whose STARTED state could
        not be stored goes back to the queue."""
        try:
            return self.prepare(job.envelope, queue=job.queue, delivery_count=job.delivery_count)
        except Rejected as exc:
            return Outcome(REJECT, reason=str(exc), cause=exc.cause)
        except PetioleError as exc:
            logger.error(
                "could not record that task %s started (%s); the message goes back to the "
                "queue and the task will run in %.0f s",
                job.envelope.task_id,
                exc,
                RESULT_STORE_RETRY_S,
            )
            return Outcome(REQUEUE, reason=str(exc), delay_s=RESULT_STORE_RETRY_S)

    def prepare(
        self, envelope: Envelope, *, queue: str, delivery_count: int, eager: bool = False
    ) -> _Prepared:
        app = self.app
        task = app.tasks.get(envelope.task_name)
        if task is None:
            raise Rejected(
                f"task {envelope.task_name!r} is not registered on this worker; start a worker "
                "whose app defines it, then run `petiole dlq requeue`",
                cause="",  # reported as unknown when it was received
            )
        args, kwargs = self._decode_body(envelope)
        request = envelope.request(
            args=args,
            kwargs=kwargs,
            queue=queue,
            delivery_count=delivery_count,
            hostname=self.hostname,
            eager=eager,
        )
        ignore = envelope.headers.get("ignore_result")  # this call's choice, validated bool
        if ignore is None:
            ignore = task.options.ignore_result
        ignore_result = app.settings.ignore_result if ignore is None else ignore
        if app.settings.track_started and not ignore_result and not eager:
            app.store_result(
                ResultRecord(
                    request.id,
                    states.STARTED,
                    meta=self._meta(request),
                    reply_to=request.reply_to,
                )
            )
        return _Prepared(task, request, args, kwargs, ignore_result)

    def check_body(self, envelope: Envelope) -> None:
        """Raise :class:`Rejected` (with why) unless the body decodes to ``[args, kwargs]``."""
        self._decode_body(envelope)

    def _decode_body(self, envelope: Envelope) -> tuple[list[Any], dict[str, Any]]:
        what = envelope.content_type
        if envelope.content_encoding != IDENTITY:
            what = f"{what}, {envelope.content_encoding}"
        try:
            # Decoded (bounded by max_body_bytes) before the serializer sees a byte.
            data = self.app.decode_body(envelope)
            serializer = self.app.serializer_for_content_type(envelope.content_type)
            body = serializer.loads(data)
        except PetioleError as exc:
            raise Rejected(f"undecodable body ({what}): {exc}") from exc
        except (Exception, RecursionError) as exc:
            # A codec's or serializer's contract is SerializationError; a plugin that
            # lets anything else escape must still not take the pool thread with it.
            raise Rejected(
                f"undecodable body ({what}): the decoder raised {type(exc).__name__}: {exc}"
            ) from exc
        if (
            not isinstance(body, list)
            or len(body) != 2
            or not isinstance(body[0], list)
            or not isinstance(body[1], dict)
        ):
            raise Rejected("message body must be [args, kwargs] (a list and an object)")
        return body[0], body[1]

    def call(self, prepared: _Prepared, *, soft_time_limit_s: float | None) -> _Called:
        """Call the task body with its request context, soft time limit and hooks."""
        task, request = prepared.task, prepared.request
        token = current_request.set(request)
        try:
            if self._prerun is not None:
                self._prerun(task=task, request=request)
            try:
                if soft_time_limit_s is None:  # the usual case: no limit to arm or disarm
                    retval = task(*prepared.args, **prepared.kwargs)
                    if type(retval) not in _NEVER_AWAITABLE:
                        retval = _run_if_awaitable(retval)
                else:
                    with soft_time_limit(soft_time_limit_s):
                        retval = _run_if_awaitable(task(*prepared.args, **prepared.kwargs))
                called = _Called(states.SUCCESS, retval)
            except (Exception, SystemExit) as exc:
                # sys.exit() in a task fails the task; it must not end the pool thread
                # (where threading would swallow it silently) or the worker.
                called = self._failed(task, exc)
            called = self._stored_form(prepared, called)
            self._after_call(task, request, called)
            return called
        finally:
            current_request.reset(token)

    async def _call_async(self, prepared: _Prepared, limit_s: float | None) -> _Called:
        import asyncio  # loaded already: this runs on an event loop

        task, request = prepared.task, prepared.request
        current_request.set(request)  # this coroutine runs in its own context copy
        if self._prerun is not None:
            self._prerun(task=task, request=request)
        try:
            awaitable = task(*prepared.args, **prepared.kwargs)
            retval = await asyncio.wait_for(_await(awaitable), timeout=limit_s)
            called = _Called(states.SUCCESS, retval)
        except asyncio.TimeoutError:
            exc = SoftTimeLimitExceeded(f"cancelled after its time limit of {limit_s} s")
            called = _Called(states.FAILURE, exc, _format(exc))
        except Exception as exc:
            called = self._failed(task, exc)
        called = self._stored_form(prepared, called)
        self._after_call(task, request, called)
        return called

    def _stored_form(self, prepared: _Prepared, called: _Called) -> _Called:
        """A success whose result is kept, serialized for the store now, before the
        hooks hear the outcome: a value the store cannot take fails the task, and
        every hook, log line and workflow step then sees that failure."""
        return called if prepared.ignore_result else self._with_payload(prepared, called)

    def _failed(self, task: Task[Any, Any], exc: BaseException) -> _Called:
        if isinstance(exc, Retry):
            return _Called(states.RETRY, exc, _format(exc.exc) if exc.exc else None)
        if task.options.autoretry_for and isinstance(exc, task.options.autoretry_for):
            try:
                task.retry(exc=exc)
            except Retry as retry:
                return _Called(states.RETRY, retry, _format(exc))
            except Exception as final:  # retries exhausted: the task fails with it
                return _Called(states.FAILURE, final, _format(final))
        return _Called(states.FAILURE, exc, _format(exc))

    def _after_call(self, task: Task[Any, Any], request: Request, called: _Called) -> None:
        if self._postrun is not None:
            self._postrun(task=task, request=request, state=called.state, retval=called.value)
        if called.state == states.RETRY and self._retry is not None:
            retry: Retry = called.value
            self._retry(
                task=task,
                request=request,
                reason=retry.exc or retry,
                delay_s=max(0.0, retry.eta - time.time()),
            )
        elif called.state == states.FAILURE and self._failure is not None:
            self._failure(task=task, request=request, exc=called.value, traceback=called.traceback)

    def finish(
        self, prepared: _Prepared, called: _Called, started: float, *, defer: bool = False
    ) -> Outcome:
        """Store the result and say how to settle the message. With ``defer``, a
        plain success (no workflow to continue, no handlers) is not stored here but
        returned in the outcome, for the worker to store with others."""
        runtime_s = time.perf_counter() - started
        self._log(prepared.request, called, runtime_s)
        if not (prepared.ignore_result and called.state == states.SUCCESS):
            if defer and self._plain_success(prepared, called):
                record = self._record(prepared, called)
                return Outcome(ACK, called.state, runtime_s=runtime_s, record=record)
            try:
                self._store(prepared, called)
            except PetioleError as exc:
                logger.error(
                    "could not store the result of task %s (%s); the message goes back to "
                    "the queue and the task will run again in %.0f s",
                    prepared.request.id,
                    exc,
                    RESULT_STORE_RETRY_S,
                )
                return Outcome(REQUEUE, called.state, str(exc), RESULT_STORE_RETRY_S, runtime_s)
        try:
            self._send_retry(prepared, called)
            self._continue(prepared, called)
        except _NOT_TRANSIENT as exc:
            # No later attempt can send what this one could not (a value the
            # serializer refuses, a setting or plugin missing here): keep the message
            # where an operator sees why, instead of requeueing it until
            # max_deliveries runs out.
            reason = (
                f"task finished but its workflow could not continue: {type(exc).__name__}: "
                f"{exc} (fix it, then `petiole dlq requeue`: the task runs again)"
            )
            logger.error("task %s: %s", prepared.request.id, reason)
            return Outcome(REJECT, called.state, reason, runtime_s=runtime_s)
        except PetioleError as exc:
            logger.error(
                "task %s finished but its workflow could not continue (%s); the message goes "
                "back to the queue and the task will run again in %.0f s",
                prepared.request.id,
                exc,
                RESULT_STORE_RETRY_S,
            )
            return Outcome(REQUEUE, called.state, str(exc), RESULT_STORE_RETRY_S, runtime_s)
        if prepared.task.has_handlers:
            self._run_handlers(prepared, called)
        if called.state == states.FAILURE:
            dead_letter = prepared.task.options.dead_letter_on_failure
            if dead_letter or (dead_letter is None and self.app.settings.dead_letter_on_failure):
                reason = (
                    f"task failed: {type(called.value).__name__}: {called.value} "
                    "(dead_letter_on_failure is set; requeue it once fixed)"
                )
                return Outcome(REJECT, called.state, reason, runtime_s=runtime_s)
        return Outcome(ACK, called.state, runtime_s=runtime_s)

    def _plain_success(self, prepared: _Prepared, called: _Called) -> bool:
        """A success whose result nothing else here waits for: no workflow to
        continue (a chord's join reads its members' results), no handlers (which
        run once the outcome is stored)."""
        return (
            called.state == states.SUCCESS
            and not prepared.task.has_handlers
            and not Workflow.of(prepared.request.headers).continues
        )

    def _run_handlers(self, prepared: _Prepared, called: _Called) -> None:
        """The task class's ``on_success``/``on_failure``/``on_retry`` then
        ``after_return``, once its outcome is stored and its workflow sent. A handler
        that raises is logged; the task's outcome stands (it is already stored)."""
        task, request = prepared.task, prepared.request
        args, kwargs = request.args, request.kwargs
        state, value = called.state, called.value
        einfo = None
        try:
            if state == states.SUCCESS:
                task.on_success(value, request.id, args, kwargs)
            else:
                exc = (value.exc or value) if isinstance(value, Retry) else value
                einfo = ExceptionInfo(exc, called.traceback or _format(exc))
                if state == states.RETRY:
                    task.on_retry(exc, request.id, args, kwargs, einfo)
                else:
                    task.on_failure(exc, request.id, args, kwargs, einfo)
                value = exc
            task.after_return(state, value, request.id, args, kwargs, einfo)
        except Exception:
            logger.exception("a handler of task %s[%s] raised", request.task, request.id)

    def _log(self, request: Request, called: _Called, runtime_s: float) -> None:
        """Failures at ERROR with their traceback, retries and successes at INFO
        (checked first: formatting a line per task is not free)."""
        if called.state == states.SUCCESS:
            if self._info:
                logger.info(
                    "task %s[%s] succeeded in %.3f s: %s",
                    request.task,
                    request.id,
                    runtime_s,
                    _short_repr(called.value),
                )
        elif called.state == states.RETRY:
            retry: Retry = called.value
            logger.info(
                "task %s[%s] will retry in %.1f s (retry %d): %s",
                request.task,
                request.id,
                max(0.0, retry.eta - time.time()),
                retry.retries,
                retry.exc if retry.exc is not None else "retry requested",
            )
        else:
            logger.error(
                "task %s[%s] failed in %.3f s: %s: %s\n%s",
                request.task,
                request.id,
                runtime_s,
                type(called.value).__name__,
                called.value,
                Verbatim((called.traceback or "").rstrip()),
            )

    def _store(self, prepared: _Prepared, called: _Called) -> None:
        try:
            self.app.store_result(self._record(prepared, called))
        except ResultTooLarge as exc:
            # Storing it again would fail again: the task fails, saying why.
            request = prepared.request
            logger.error("task %s[%s]: %s; recording it as failed", request.task, request.id, exc)
            failure = _Called(states.FAILURE, exc, _format(exc))
            self.app.store_result(self._record(prepared, failure))

    def _send_retry(self, prepared: _Prepared, called: _Called) -> None:
        if called.state != states.RETRY or prepared.request.eager:
            return
        retry: Retry = called.value
        request = prepared.request
        self.app.sender.send_retry(
            request,
            list(request.args if retry.args_for_retry is None else retry.args_for_retry),
            dict(request.kwargs if retry.kwargs_for_retry is None else retry.kwargs_for_retry),
            eta=retry.eta,
            serializer=prepared.task.options.serializer,
            compression=prepared.task.options.compression,
        )

    def _continue(self, prepared: _Prepared, called: _Called) -> None:
        """Callbacks, the rest of the chain, the chord: sent as children of this task."""
        if not Workflow.of(prepared.request.headers).continues:
            return
        token = current_request.set(prepared.request)
        continuing = continuing_workflow.set(True)
        try:
            if called.state == states.SUCCESS:
                self._continuation.succeeded(prepared.request, called.value)
            elif called.state == states.FAILURE:
                self._continuation.failed(prepared.request, called.value)
        finally:
            continuing_workflow.reset(continuing)
            current_request.reset(token)

    # -- results -----------------------------------------------------------------------

    def _meta(self, request: Request) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "task": request.task,
            "worker": self.hostname,
            "queue": request.queue,
            "retries": request.retries,
        }
        if request.group_id:
            meta["group_id"] = request.group_id
            meta["group_index"] = Workflow.of(request.headers).group_index
        if request.parent_id:
            meta["parent_id"] = request.parent_id
        children = [*request.children, *planned_children(request.headers)]
        if children:
            meta["children"] = children
        return meta

    def _with_payload(self, prepared: _Prepared, called: _Called) -> _Called:
        """A success with its value serialized for the result store; a value the
        result serializer refuses makes it a failure saying so. Done once, by
        :meth:`call` (:meth:`_stored_form`); :meth:`_record` uses the payload, and
        serializes here only a success that did not come through ``call``."""
        if called.state != states.SUCCESS or called.payload is not None:
            return called
        serializer = self.app.result_serializer
        try:
            return _Called(states.SUCCESS, called.value, payload=serializer.dumps(called.value))
        except SerializationError as exc:
            error = SerializationError(
                f"task {prepared.request.task} returned a value the {serializer.name} "
                f"serializer cannot store: {exc} (return plain data, or choose a "
                "result_serializer that takes it)"
            )
            error.__cause__ = exc  # its traceback: where the serializer gave up
            return _Called(states.FAILURE, error, _format(error))

    def _record(self, prepared: _Prepared, called: _Called) -> ResultRecord:
        serializer = self.app.result_serializer
        request = prepared.request
        meta = self._meta(request)
        called = self._with_payload(prepared, called)
        state, traceback = called.state, called.traceback
        if called.payload is not None:
            payload = called.payload
        else:
            cause = called.value
            if isinstance(cause, Retry):
                meta["retry_eta"] = cause.eta
                cause = cause.exc or cause
            description = remote_errors.describe(cause)
            try:
                payload = serializer.dumps(description)
            except SerializationError:
                # Arguments that cannot travel are dropped; type and message still do.
                description["args"] = None
                payload = serializer.dumps(description)
        date_done = None if state == states.RETRY else time.time()
        return ResultRecord(
            request.id,
            state,
            payload,
            serializer.content_type,
            traceback,
            date_done,
            meta,
            reply_to=request.reply_to,
        )
