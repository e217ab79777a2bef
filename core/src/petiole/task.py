"""Tasks: functions registered with an app, callable locally or through a worker."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, ParamSpec, TypeVar

from petiole.canvas.signature import Signature
from petiole.canvas.workflows import chunks_group, group, map_signature
from petiole.errors import ConfigError, MaxRetriesExceededError, PetioleError, Retry
from petiole.producer import Producer
from petiole.request import Request, current_request
from petiole.result import AsyncResult

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

    def __post_init__(self) -> None:
        if self.rate_limit is not None:
            parse_rate_limit(self.rate_limit)
        if self.priority is not None and not 0 <= self.priority <= 9:
            raise ConfigError(f"priority must be 0-9, got {self.priority}")
        # Accept any iterable of exception types (a list, say) and keep a tuple for isinstance.
        object.__setattr__(self, "autoretry_for", tuple(self.autoretry_for))


TASK_OPTIONS = frozenset(f.name for f in dataclasses.fields(TaskOptions))


class Task(Generic[P, R]):
    """A registered task. Calling it runs the function here; ``delay`` sends it."""

    def __init__(
        self, app: Producer, fn: Callable[..., R], options: TaskOptions, name: str
    ) -> None:
        self.app = app
        self.fn = fn
        self.options = options
        self.name = name
        functools.update_wrapper(self, fn)

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
        return self.apply_async(args, kwargs)

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
        """
        return self.app.send_task(
            self.name,
            args,
            kwargs,
            countdown=countdown,
            eta=eta,
            expires=expires,
            priority=self.options.priority if priority is None else priority,
            queue=queue or self.options.queue,
            task_id=task_id,
            headers=headers,
            serializer=serializer or self.options.serializer,
            compression=compression or self.options.compression,
            soft_time_limit_s=soft_time_limit_s,
            time_limit_s=time_limit_s,
        )

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
