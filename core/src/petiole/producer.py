"""What signatures and tasks send through, as a Protocol: the app's
``send_task`` and result handles. Canvas and tasks take a :class:`Producer`
(the app is one) rather than importing the app."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from petiole.envelope import Workflow
from petiole.ports import ResultsApp
from petiole.result import AsyncResult


class Producer(ResultsApp, Protocol):
    def send_task(
        self,
        name: str,
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
        link: Any = None,
        link_error: Any = None,
        ignore_result: bool | None = None,
        retry: bool | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        _workflow: Workflow | None = None,
    ) -> AsyncResult:
        """Send a task by name; see :meth:`petiole.task.Task.apply_async`."""
        ...

    def run_task_here(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        serializer: str | None = None,
        propagate: bool | None = None,
    ) -> AsyncResult:
        """Run a registered task here, as a worker would; see :meth:`petiole.task.Task.apply`."""
        ...

    def AsyncResult(self, task_id: str) -> AsyncResult:  # noqa: N802 - Celery's spelling
        ...
