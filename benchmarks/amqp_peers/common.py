"""What the system modules and the runner share: where the servers are, and what each
system module offers.

Each system module (``sys_petiole``, ``sys_petiole_classic``, ``sys_celery``,
``sys_dramatiq``, ``sys_dramatiq_confirms``, ``sys_taskiq``) defines its app, two
tasks (``noop()`` and ``echo(x) -> x``) and the same small interface, used by the
runner (``run.py``) and by the producer subprocess (``python sys_<name>.py ACTION N``,
which prints one JSON object; the workloads are ``systemkit``'s, shared with
``redis_peers``):

* ``NAME``, ``config()`` (the worker command, shown), ``worker_commands()``, and
  optionally ``WORKER_ENV`` (variables for the workers only);
* ``SETUP``: a :class:`Setup` (queue type, publisher confirms, results), shown in
  the report;
* ``QUEUE``: the queue W1 drains; ``QUEUES``: every queue the system declares (the
  runner deletes them all before each system runs, as the Redis runner flushes);
* ``PRODUCER``: a ``systemkit.QueueProducer``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

AMQP_URL_ENV = "BENCH_AMQP_URL"
# How long the producer waits for any one result (a broken worker must not hang the run).
RESULT_TIMEOUT_S = 60.0
# How many sends are in flight at once while W1's tasks are enqueued, for systems whose
# send waits for the broker's confirm (Petiole, taskiq): W1 times the drain, not this.
ENQUEUE_CONCURRENCY = 32


@dataclass(frozen=True)
class Setup:
    """What a reader must know to compare a system's figures with another's."""

    queue_type: str  # "quorum" or "classic": what the system declares by default
    confirms: str  # whether (and how) a send waits for RabbitMQ's publisher confirm
    results: str  # the result store W2 and W3 wait on


def amqp_url() -> str:
    """The RabbitMQ node every system module uses as its broker (set by the runner)."""
    return os.environ.get(AMQP_URL_ENV, "amqp://guest:guest@127.0.0.1:5672/%2F")
