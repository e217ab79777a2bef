"""Tasks: functions registered with an app, callable locally or through a worker."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import inspect
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, ParamSpec, TypeVar

from petiole import celery_names, states
from petiole.backend import ResultRecord
from petiole.canvas.signature import Signature
from petiole.canvas.workflows import chunks_group, group, map_signature
from petiole.celery_names import CelerySpellingError
from petiole.errors import ConfigError, MaxRetriesExceededError, PetioleError, Retry
from petiole.producer import SEND_MANY_BATCH_SIZE, Producer, send_many
from petiole.request import Request, current_request
from petiole.result import AsyncResult
from petiole.suggestions import did_you_mean

P = ParamSpec("P")
R = TypeVar("R")

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([smh])\s*$")
_PER_S = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate_limit(text: str) -> float:
    """``"100/m"`` → tasks per second (100/60). Units: s, m, h."""
    match = _RATE.match(text)
    if match is None:
        raise ConfigError(f"rate_limit {text!r} must look like '10/s', '100/m' or '1000/h'")
    return float(match.group(1)) / _PER_S[match.group(2)]


@dataclass(frozen=True)
class TaskOptions:
    """Everything ``@app.task(...)`` accepts. ``None`` means: use the app's setting."""

    name: str | None = None
    queue: str | None = None
    priority: int | None = None
    bind: bool = False
    ignore_result: bool | None = None
    serializer: str | None = None
    #: Codec for this task's bodies (``"zlib"``, ``"zstd"``, ``"identity"`` for none);
    #: ``None``: the app's ``compression``. Bodies under ``compression_min_bytes`` go as is.
    compression: str | None = None
    #: Retries: ``self.retry()`` (bound tasks) or automatically for these exception types.
    autoretry_for: tuple[type[BaseException], ...] = ()
    #: Retries before the task fails for good; ``None`` retries forever.
    max_retries: int | None = 3
    #: Seconds before a retry when neither countdown nor backoff says otherwise.
    default_retry_delay: float = 180.0
    #: Exponential backoff: ``True`` (base 1 s) or a base in seconds: base * 2^retries.
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600.0
    #: Full jitter: the delay is drawn uniformly from [0, backoff], so retries spread out.
    retry_jitter: bool = True
    #: Put the message in the dead-letter store too when the task fails for good.
    dead_letter_on_failure: bool | None = None
    #: ``"100/m"``: at most this many starts of this task per worker (token bucket).
    rate_limit: str | None = None
    soft_time_limit_s: float | None = None
    time_limit_s: float | None = None
    #: Acknowledge the message after the task ran (``True``: at least once, the
    #: default) or just before it starts (``False``: at most once, Celery's default —
    #: a worker that dies mid-task loses the task). ``None``: the app's ``acks_late``.
    acks_late: bool | None = None
    #: Check a call's arguments against the function's signature when it is sent
    #: (a ``TypeError`` in the caller instead of a failed task later).
    typing: bool = True

    def __post_init__(self) -> None:
        if self.rate_limit is not None:
            parse_rate_limit(self.rate_limit)
        if self.priority is not None and not 0 <= self.priority <= 9:
            raise ConfigError(f"priority must be 0-9, got {self.priority}")
        # Accept any iterable of exception types (a list, say) and keep a tuple for isinstance.
        object.__setattr__(self, "autoretry_for", tuple(self.autoretry_for))


TASK_OPTIONS = frozenset(f.name for f in dataclasses.fields(TaskOptions))


def check_task_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``@app.task(...)``'s options, or a ConfigError naming each unknown one with
    the option it most likely meant (a Celery spelling: the Petiole one)."""
    translated = celery_names.translate("task option", options, petiole_names=TASK_OPTIONS)
    if translated.messages:
        raise CelerySpellingError(translated.messages, source="@app.task(...)")
    options = translated.values
    unknown = sorted(set(options) - TASK_OPTIONS)
    if unknown:
        hints = [f"{name!r}{did_you_mean(name, sorted(TASK_OPTIONS))}" for name in unknown]
        raise ConfigError(
            f"unknown task option(s) {', '.join(hints)}; valid: {', '.join(sorted(TASK_OPTIONS))}"
        )
    return dict(options)


def class_defaults(cls: type) -> dict[str, Any]:
    """Task options set as class attributes of a ``base=`` Task subclass (its own or
    inherited from another subclass), Celery's way of sharing them."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is Task or not issubclass(klass, Task):
            continue
        for name, value in vars(klass).items():
            if name in TASK_OPTIONS and name != "name" and not callable(value):
                found[name] = value
    return found


@dataclass(frozen=True)
class ExceptionInfo:
    """The ``einfo`` a task's ``on_failure``, ``on_retry`` and ``after_return`` get,
    as Celery's: the exception, its type, and its formatted traceback (``str(einfo)``)."""

    exception: BaseException
    traceback: str

    @property
    def type(self) -> type[BaseException]:
        return type(self.exception)

    def __str__(self) -> str:
        return self.traceback


_HANDLERS = ("on_success", "on_failure", "on_retry", "after_return")


class Task(Generic[P, R]):
    """A registered task. Calling it runs the function here; ``delay`` sends it.

    Subclass it and pass ``@app.task(base=MyTask)`` to run code around every
    execution in the worker: :meth:`on_success`, :meth:`on_failure`,
    :meth:`on_retry`, :meth:`after_return` (Celery's handlers, same arguments).
    A subclass's class attributes named like task options (``max_retries = 5``,
    ``autoretry_for = (IOError,)``) are defaults for every task built on it.
    """

    def __init__(
        self, app: Producer, fn: Callable[..., R], options: TaskOptions, name: str
    ) -> None:
        self.app = app
        self.fn = fn
        self.options = options
        self.name = name
        functools.update_wrapper(self, fn)
        cls = type(self)
        #: Whether a subclass overrides any handler: the worker skips them otherwise.
        self.has_handlers = any(getattr(cls, h) is not getattr(Task, h) for h in _HANDLERS)
        self._call_signature: inspect.Signature | None = None

    def __repr__(self) -> str:
        return f"<Task {self.name!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.options.bind:
            return self.fn(self, *args, **kwargs)
        return self.fn(*args, **kwargs)

    @property
    def queue(self) -> str | None:
        return self.options.queue

    @property
    def priority(self) -> int | None:
        return self.options.priority

    @property
    def request(self) -> Request:
        """The current execution's context (inside a running task)."""
        req = current_request.get()
        if req is None:
            return Request(id="", task=self.name)
        return req

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult:
        """Send the task with these arguments, with default options."""
        if "apply_async" in self.__dict__ or type(self).apply_async is not _APPLY_ASYNC:
            # A subclass's own (or one patched in, a test's mock) sees every send, as in Celery.
            return self.apply_async(args, kwargs)
        if self.options.typing:
            self.check_arguments(args, kwargs)
        return self.app.send_with_defaults(self.name, args, kwargs)

    def delay_many(
        self,
        calls: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        batch_size: int = SEND_MANY_BATCH_SIZE,
        **options: Any,
    ) -> list[AsyncResult]:
        """Send one task per item of ``calls`` and return their results, in order.

        Each item is one call's arguments: a tuple (or list) of positional
        arguments — ``add.delay_many([(1, 2), (3, 4)])``, ``(x,)`` for one — or a
        mapping of keyword arguments. ``options`` are :meth:`apply_async`'s
        (``countdown=``, ``queue=``, ``priority=``, ...) for every call, routed as
        it routes them; every call gets its own id (``task_id=`` is refused).

        The calls go out in batches of ``batch_size``, each pipelined on a
        transport that batches publishes and durable before the next batch is read,
        so a generator of a million items holds one batch at a time. Every item of
        a batch is checked (the ``typing`` option) before any of it is sent, and
        every item of a list before anything is sent: a ``TypeError`` names the
        item. A failure once something was sent raises
        :class:`~petiole.producer.SendManyError`, whose ``sent`` and
        ``unconfirmed`` say which calls are stored and which may be.
        """
        if "task_id" in options:
            raise ConfigError(
                f"{self.name}.delay_many() gives every call its own id: drop task_id="
            )
        typing = self.options.typing
        check = self.check_arguments
        send_task = self.app.send_task
        name = self.name

        def prepare(item: Any) -> tuple[Sequence[Any], Mapping[str, Any]]:
            args: Sequence[Any]
            kwargs: Mapping[str, Any]
            if isinstance(item, (tuple, list)):
                args, kwargs = item, {}
            elif isinstance(item, Mapping):
                args, kwargs = (), item
            else:
                raise TypeError(
                    f"{item!r} is neither a tuple of positional arguments nor a mapping "
                    "of keyword arguments (one argument x is written (x,))"
                )
            if typing:
                check(args, kwargs)
            return args, kwargs

        def send(args: Sequence[Any], kwargs: Mapping[str, Any], task_id: str) -> AsyncResult:
            return send_task(name, args, kwargs, task_id=task_id, **options)

        return send_many(
            self.app,
            calls,
            prepare=prepare,
            send=send,
            batch_size=batch_size,
            what=f"{name}.delay_many()",
        )

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` when the function could not be called with these
        arguments (the ``typing`` option; a bound task's ``self`` is not counted)."""
        if not kwargs and self._positional_range[0] <= len(args) <= self._positional_range[1]:
            return  # the common call, settled without binding (a third of the cost)
        sig = self._signature()
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            bare = sig.replace(
                parameters=[p.replace(annotation=p.empty) for p in sig.parameters.values()],
                return_annotation=sig.empty,
            )
            raise TypeError(f"{self.name}{bare}: {exc}") from None

    def _signature(self) -> inspect.Signature:
        sig = self._call_signature
        if sig is None:
            try:
                sig = inspect.signature(self.fn)
            except (TypeError, ValueError):  # a builtin without one: nothing to check
                sig = inspect.Signature([inspect.Parameter("a", inspect.Parameter.VAR_POSITIONAL)])
            if self.options.bind:
                sig = sig.replace(parameters=list(sig.parameters.values())[1:])
            self._call_signature = sig
        return sig

    @functools.cached_property
    def _positional_range(self) -> tuple[float, float]:
        """How many positional arguments alone make a valid call: (at least, at most);
        (inf, -1) when keyword-only parameters without defaults rule that out."""
        kinds = inspect.Parameter
        low, high = 0, 0.0
        for p in self._signature().parameters.values():
            if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD):
                high += 1
                low += p.default is p.empty
            elif p.kind is kinds.VAR_POSITIONAL:
                high = float("inf")
            elif p.kind is kinds.KEYWORD_ONLY and p.default is p.empty:
                return float("inf"), -1.0
        return low, high

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: dt.datetime | float | None = None,
        expires: dt.datetime | float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        serializer: str | None = None,
        compression: str | None = None,
        soft_time_limit_s: float | None = None,
        time_limit_s: float | None = None,
        link: Signature | Sequence[Signature] | None = None,
        link_error: Signature | Sequence[Signature] | None = None,
        ignore_result: bool | None = None,
        retry: bool | None = None,
        retry_policy: Mapping[str, float] | None = None,
        **celery_options: Any,
    ) -> AsyncResult:
        """Send the task with options.

        ``countdown``: run no earlier than this many seconds from now. ``eta``: run
        no earlier than this time (an aware datetime, or seconds since the epoch).
        ``expires``: do not run after this time (datetime, epoch seconds), or, as a
        number below one year, this many seconds from now. ``priority``: 0-9,
        higher first. ``headers``: extra headers carried with the message.
        ``serializer`` / ``compression``: this call's serializer and codec
        (``"identity"``: no compression), over the task's and the app's.
        ``soft_time_limit_s`` / ``time_limit_s``: this call's time limits.
        ``link`` / ``link_error``: signatures sent with the result when the task
        succeeds / with its id when it fails for good. ``ignore_result``: store
        no result for this call. ``retry`` / ``retry_policy``: how to retry the
        publish itself when the broker is unreachable (:mod:`petiole.publish_retry`).
        Celery's spellings of these (``time_limit=``) are read as Petiole's; its
        options Petiole lacks (``routing_key=``) are refused saying what to do.
        """
        if self.options.typing:
            self.check_arguments(args, kwargs or {})
        return self.app.send_task(
            self.name,
            args,
            kwargs,
            countdown=countdown,
            eta=eta,
            expires=expires,
            priority=priority,
            queue=queue,
            task_id=task_id,
            headers=headers,
            serializer=serializer,
            compression=compression,
            soft_time_limit_s=soft_time_limit_s,
            time_limit_s=time_limit_s,
            link=link,
            link_error=link_error,
            ignore_result=ignore_result,
            retry=retry,
            retry_policy=retry_policy,
            **celery_options,
        )

    def apply(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        throw: bool | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> AsyncResult:
        """Run the task here and now, as a worker would (serialized arguments,
        retries, result, hooks), and return its already final result
        (an :class:`~petiole.result.EagerResult`). ``throw``: raise a failure here
        instead of returning it in the result (default: the ``eager_propagates``
        setting). Needs no broker."""
        if self.options.typing:
            self.check_arguments(args, kwargs or {})
        return self.app.run_task_here(
            self.name,
            args,
            kwargs,
            task_id=task_id,
            headers=headers,
            serializer=self.options.serializer,
            propagate=throw,
        )

    # -- inside a running task ----------------------------------------------------------

    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Any = None,
    ) -> None:
        """Record a state of a running task, readable at once by anyone holding its
        result: ``self.update_state(state="PROGRESS", meta={"current": 3, "total": 10})``
        then ``AsyncResult(id).state == "PROGRESS"`` and ``.info == {...}``.

        ``task_id`` defaults to the running task's, ``state`` to ``"PROGRESS"``
        (Celery's default is PENDING, which reads as "not started"; pass any name).
        ``meta`` is stored as the record's value, serialized by the result
        serializer. A ready state (SUCCESS, FAILURE, REVOKED) cannot be set here:
        the worker records those when the task ends.
        """
        request = current_request.get()
        if task_id is None:
            if request is None or not request.id:
                raise PetioleError(
                    f"{self.name}.update_state() called outside a running task: pass task_id="
                )
            task_id = request.id
        state = state or states.PROGRESS
        if state in states.READY_STATES:
            raise ConfigError(
                f"update_state(state={state!r}): a ready state is recorded by the worker "
                "when the task returns or raises; use a state of your own such as 'PROGRESS'"
            )
        if request is not None and request.eager:
            return  # an eager task's result is final when it returns; nobody can poll it
        serializer = self.app.result_serializer
        meta_out: dict[str, Any] = {"task": self.name}
        if request is not None and request.id == task_id:
            meta_out.update(worker=request.hostname, queue=request.queue, retries=request.retries)
        self.app.store_result(
            ResultRecord(
                task_id,
                state,
                serializer.dumps(meta),
                serializer.content_type,
                meta=meta_out,
                reply_to=request.reply_to if request is not None else None,
            )
        )

    # -- handlers: override in a base class (``@app.task(base=MyTask)``) -----------------

    def on_success(
        self, retval: Any, task_id: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> None:
        """In the worker, after a successful run's result is stored."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        einfo: ExceptionInfo,
    ) -> None:
        """In the worker, after the task failed for good and its failure is stored."""

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        einfo: ExceptionInfo,
    ) -> None:
        """In the worker, after the task asked to be retried and its retry is sent."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        einfo: ExceptionInfo | None,
    ) -> None:
        """In the worker, after any run (after the handler above): ``status`` is
        SUCCESS, FAILURE or RETRY, ``retval`` the return value or the exception."""

    # -- canvas ----------------------------------------------------------------------

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of this task: ``add.s(2)`` is a partial that takes the result
        of what comes before it as its first argument."""
        return Signature(self.name, args, kwargs, app=self.app)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: the parent's result is not passed to it."""
        return Signature(self.name, args, kwargs, immutable=True, app=self.app)

    def signature(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Signature:
        return Signature(self.name, args, kwargs, options, app=self.app)

    #: Celery's older name for :meth:`signature`, kept so ported code runs as written.
    subtask = signature

    def map(self, items: Iterable[Any]) -> Signature:
        """One message that calls this task on each item: ``[task(i) for i in items]``."""
        return map_signature(self.name, items, self.app, star=False)

    def starmap(self, items: Iterable[Sequence[Any]]) -> Signature:
        """One message that calls ``task(*args)`` for each args in ``items``."""
        return map_signature(self.name, items, self.app, star=True)

    def chunks(self, items: Iterable[Sequence[Any]], size: int) -> group:
        """A group of messages, each a starmap over ``size`` of the items."""
        return chunks_group(self.name, items, size, self.app)

    def AsyncResult(self, task_id: str) -> AsyncResult:  # noqa: N802 - Celery's spelling
        result: AsyncResult = self.app.AsyncResult(task_id)
        return result

    # -- retries -------------------------------------------------------------------

    def retry_delay_s(self, retries: int) -> float:
        """Seconds before retry number ``retries + 1``, per the backoff options."""
        options = self.options
        if not options.retry_backoff:
            return options.default_retry_delay
        base = 1.0 if options.retry_backoff is True else float(options.retry_backoff)
        delay = min(options.retry_backoff_max, base * (2**retries))
        return random.uniform(0, delay) if options.retry_jitter else delay

    def retry(
        self,
        exc: BaseException | None = None,
        *,
        countdown: float | None = None,
        eta: float | None = None,
        max_retries: int | None = None,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> NoReturn:
        """Run this task again later; call it as ``raise self.retry(exc=exc)``.

        Sends the retry (same task id, ``retries`` + 1) and raises
        :class:`~petiole.errors.Retry`, which the worker records as the RETRY
        state. With no retries left (``max_retries``, default the task's), it
        re-raises ``exc`` instead, or :class:`MaxRetriesExceededError` when there
        is none, so the task fails with its last exception.
        """
        request = current_request.get()
        if request is None:
            raise PetioleError(f"{self.name}.retry() called outside a running task")
        limit = self.options.max_retries if max_retries is None else max_retries
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"task {self.name}[{request.id}] retried {request.retries} times "
                f"(max_retries={limit})"
            )
        now = time.time()
        if countdown is not None:
            due = now + countdown
        elif eta is not None:
            due = eta
        else:
            due = now + self.retry_delay_s(request.retries)
        # The worker sends the retry after storing the RETRY state, so a quick retry
        # that finishes first is never overwritten by it.
        retry = Retry(exc, due, request.retries + 1)
        retry.args_for_retry = list(request.args if args is None else args)
        retry.kwargs_for_retry = dict(request.kwargs if kwargs is None else kwargs)
        raise retry


# Task.apply_async as defined here: delay() takes its shortcut only while this is
# what a task's apply_async is (not a subclass's, nor one a test patched in).
_APPLY_ASYNC = Task.apply_async
