"""Eager mode: a task sent is run at once, in the sending thread, as a worker runs it.

With the ``eager`` setting (tests, scripts), the :class:`~petiole.sending.Sender`
hands each message here instead of publishing it. Retries run at once, one
after the other, until the task is done or out of retries; with
``eager_propagates`` a failure is raised to the caller.
"""

from __future__ import annotations

import time

from petiole import states
from petiole.backend import ResultRecord
from petiole.envelope import Envelope
from petiole.errors import ConfigError
from petiole.execution import Rejected, RunnerApp, TaskRunner
from petiole.result import AsyncResult, EagerResult


class EagerRunner:
    def __init__(self, app: RunnerApp) -> None:
        self.app = app

    def run(self, envelope: Envelope, queue: str, propagate: bool | None = None) -> AsyncResult:
        """Run the task of ``envelope`` here; return its result, already final.
        ``propagate``: raise a failure here (None: the ``eager_propagates`` setting)."""
        runner = TaskRunner(self.app, hostname="eager")
        try:
            state, record = runner.execute(envelope, queue=queue, delivery_count=1, eager=True)
            while state == states.RETRY:
                envelope = envelope.retried()
                state, record = runner.execute(envelope, queue=queue, delivery_count=1, eager=True)
        except Rejected as exc:
            raise ConfigError(f"eager task {envelope.task_name!r} cannot run: {exc}") from exc
        if record is None:
            record = ResultRecord(envelope.task_id, state, date_done=time.time())
        result = EagerResult(envelope.task_id, self.app, record)
        if propagate is None:
            propagate = self.app.settings.eager_propagates
        if state == states.FAILURE and propagate:
            result.get()
        return result
