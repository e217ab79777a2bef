"""What the system modules and the runner share: the producer's entry point and the
tasks that Celery and Petiole define alike (the workloads themselves are in
``systemkit``, shared with ``amqp_peers``).

Each system module (``sys_petiole``, ``sys_celery``, ``sys_dramatiq``) defines
its app and two tasks (``noop()`` and ``echo(x) -> x``) and the same small
interface, used by the runner (``run.py``) and by the producer subprocess
(``python sys_<name>.py ACTION N``, which prints one JSON object).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import systemkit
from systemkit import QueueProducer, define_tasks
from systemkit import produce_queue_workloads as produce

__all__ = ["RESULT_TIMEOUT_S", "Producer", "define_tasks", "delay_producer", "produce"]

# How long the producer waits for any one result (a broken worker must not hang the run).
RESULT_TIMEOUT_S = 60.0

Producer = QueueProducer


def delay_producer(noop: Any, echo: Any, send_and_wait: Callable[[int], list[Any]]) -> Producer:
    """``systemkit.delay_producer`` with this benchmark's result timeout."""
    return systemkit.delay_producer(noop, echo, send_and_wait, result_timeout_s=RESULT_TIMEOUT_S)
