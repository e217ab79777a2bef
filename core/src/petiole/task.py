"""Tasks: functions registered with an app, callable locally or through a worker."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from petiole.request import Request, current_request

if TYPE_CHECKING:
    from petiole.app import Petiole
    from petiole.result import AsyncResult

P = ParamSpec("P")
R = TypeVar("R")

# Options a task accepts at decoration time; anything else is a typo we report.
TASK_OPTIONS = frozenset(
    {"name", "queue", "priority", "bind", "ignore_result", "serializer", "expires", "time_limit"}
)


class Task(Generic[P, R]):
    """A registered task. Calling it runs the function here; ``delay`` sends it."""

    def __init__(
        self,
        app: Petiole,
        fn: Callable[..., R],
        *,
        name: str,
        queue: str | None = None,
        priority: int | None = None,
        bind: bool = False,
        ignore_result: bool | None = None,
        serializer: str | None = None,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.queue = queue
        self.priority = priority
        self.bind = bind
        self.ignore_result = ignore_result
        self.serializer = serializer
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<Task {self.name!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.bind:
            return self.fn(self, *args, **kwargs)
        return self.fn(*args, **kwargs)

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
    ) -> AsyncResult:
        """Send the task with options.

        ``countdown``: run no earlier than this many seconds from now. ``eta``: run
        no earlier than this time (an aware datetime, or seconds since the epoch).
        ``expires``: do not run after this time (datetime, epoch seconds), or, as a
        number below one year, this many seconds from now. ``priority``: 0-9,
        higher first. ``headers``: extra headers carried with the message.
        """
        return self.app.send_task(
            self.name,
            args,
            kwargs,
            countdown=countdown,
            eta=eta,
            expires=expires,
            priority=self.priority if priority is None else priority,
            queue=queue or self.queue,
            task_id=task_id,
            headers=headers,
            serializer=serializer or self.serializer,
        )

    def AsyncResult(self, task_id: str) -> AsyncResult:  # noqa: N802 - Celery's spelling
        result: AsyncResult = self.app.AsyncResult(task_id)
        return result
