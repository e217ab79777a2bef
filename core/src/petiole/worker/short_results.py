"""Results of short tasks run back to back, stored together before their acks.

Storing a result is a round trip to the result store per task. For a worker
running a backlog of short tasks one after another (the solo pool, each worker
process of the default), that round trip costs more than the task. So when the
task about to run is *short* — its runs in this worker averaged under 1 ms — and
more jobs wait behind it, its plain success (no workflow to continue, no
handlers) is not stored by the runner: its message, count and record wait here,
and are stored in one round trip (:class:`~petiole.backend.StoresInBatches`)
before their messages are acknowledged:

- before a job that is not short starts (a slow task never holds back a result
  that is ready);
- when the worker has nothing more to start now (the end of a round);
- once 64 wait.

So a result waits for at most the short tasks run after it, and a lone task's
result (a round trip with nobody queued behind it) is stored at once, as
before. At-least-once is unchanged: a message is acknowledged only after its
result is stored; a worker killed first runs those tasks again, as after any
crash before an ack. If the batch cannot be stored, each record is tried alone,
and the messages whose record still cannot be stored go back to the queue, to
run again later (as when storing one result fails).
"""

from __future__ import annotations

import logging
import threading

from petiole.app import Petiole
from petiole.backend import ResultRecord, StoresInBatches
from petiole.capabilities import offers
from petiole.errors import PetioleError
from petiole.execution import RESULT_STORE_RETRY_S
from petiole.transport import Delivery
from petiole.worker.settle import Settler

logger = logging.getLogger("petiole.worker")

#: A task is short when its runs here average under this (an exponential average).
SHORT_S = 0.001
#: The most results held at once.
MAX_HELD = 64
_WEIGHT = 0.2  # of the newest run in the average


class ShortTaskResults:
    """The results held back, and each task's average runtime in this worker."""

    def __init__(self, app: Petiole, settler: Settler) -> None:
        self.app = app
        self.settler = settler
        self.enabled = False  # see enable()
        self._lock = threading.Lock()
        self._held: list[tuple[Delivery, str, ResultRecord]] = []
        self._runtimes: dict[str, float] = {}

    def enable(self, *, runs_inline: bool) -> None:
        """Hold results back when the pool runs each job in the worker's own thread
        and the result store takes a batch in one round trip, with no size limit
        to refuse a record after its task was counted as done."""
        backend = self.app.backend
        self.enabled = (
            runs_inline
            and offers(backend, StoresInBatches)
            and backend.capabilities.max_result_bytes is None
        )

    def is_short(self, task_name: str) -> bool:
        return self.runs_under(task_name, SHORT_S)

    def runs_under(self, task_name: str, seconds: float) -> bool:
        """Whether the task's runs here average under ``seconds`` (False until one ran)."""
        average = self._runtimes.get(task_name)
        return average is not None and average < seconds

    def ran(self, task_name: str, runtime_s: float) -> None:
        """Note a run's length (from the outcome) in the task's average."""
        average = self._runtimes.get(task_name)
        self._runtimes[task_name] = (
            runtime_s if average is None else average + _WEIGHT * (runtime_s - average)
        )

    def holding(self) -> bool:
        return bool(self._held)

    def hold(self, delivery: Delivery, count_as: str, record: ResultRecord) -> None:
        with self._lock:
            self._held.append((delivery, count_as, record))
            full = len(self._held) >= MAX_HELD
        if full:
            self.flush()

    def flush(self) -> None:
        """Store every result held, then acknowledge their messages."""
        with self._lock:
            held, self._held = self._held, []
        if not held:
            return
        try:
            self.app.store_results([record for _, _, record in held])
        except PetioleError as exc:
            logger.warning(
                "could not store %d results together (%s); storing them one by one",
                len(held),
                exc,
            )
            held = [entry for entry in held if self._store_alone(*entry)]
        for delivery, count_as, _ in held:
            self.settler.ack(delivery, count_as)

    def store_now(self, record: ResultRecord) -> None:
        """Store a held-back result whose message is no longer this worker's (its
        lease was lost): as the runner would have, logging a failure."""
        try:
            self.app.store_result(record)
        except PetioleError as exc:
            logger.error("could not store the result of task %s (%s)", record.task_id, exc)

    def _store_alone(self, delivery: Delivery, count_as: str, record: ResultRecord) -> bool:
        try:
            self.app.store_result(record)
            return True
        except PetioleError as exc:
            logger.error(
                "could not store the result of task %s (%s); the message goes back to the "
                "queue and the task will run again in %.0f s",
                record.task_id,
                exc,
                RESULT_STORE_RETRY_S,
            )
            self.settler.requeue(delivery, delay_s=RESULT_STORE_RETRY_S)
            return False
