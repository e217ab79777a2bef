"""RQ (latest from PyPI; Redis only): its queue (a list), job hashes, the started-job
registry and, for results, a stream per job.

Default: ``rq worker``: one worker process that forks a "work horse" child for every
job (isolation first: the job cannot break the worker), one job at a time. Best:
see ``FLAGS``. Both acknowledge in RQ's way: the job sits in the started registry
while it runs and leaves it when it finished. ``noop`` keeps no result
(``result_ttl=0``, as the other systems' ``ignore_result``); ``echo`` keeps RQ's
default 500 s. The producer waits for a result with ``Job.latest_result(timeout=)``,
which blocks on the job's result stream (no polling).
"""

from __future__ import annotations

import sys
from typing import Any

import redis
from common import RESULT_TIMEOUT_S, Flags, produce
from rq import Queue
from rq.job import Job
from systemkit import QueueProducer, env_int, redis_url

NAME = "RQ"
QUEUE = "default"
QUEUE_KEY = f"rq:queue:{QUEUE}"
BEST_PROCESSES = env_int("BENCH_RQ_PROCESSES", 2)
BEST_OPTIONS = ["--worker-class", "rq.worker.SimpleWorker"]


def _worker(options: list[str]) -> list[str]:
    return [
        *(sys.executable, "-m", "rq.cli", "worker", "--config", "rq_settings", *options),
        *("--logging_level", "WARNING", QUEUE),
    ]


FLAGS = {
    "default": Flags(
        commands=[_worker([])],
        shown="rq worker",
        # A fork per job holds it to tens of tasks a second.
        scale=0.01,
    ),
    "best": Flags(
        commands=[_worker(BEST_OPTIONS)] * BEST_PROCESSES,
        shown=f"{BEST_PROCESSES} x rq worker {' '.join(BEST_OPTIONS)}",
        why="SimpleWorker runs jobs in the worker process itself (no fork per job); "
        "RQ runs one job at a time per worker, so one worker per core",
        scale=0.1,
    ),
}


# By name: the producer runs this file as ``__main__``, the workers import ``sys_rq``.
NOOP, ECHO = "sys_rq.noop", "sys_rq.echo"


def noop() -> None:
    pass


def echo(x: int) -> int:
    return x


def remaining(client: redis.Redis) -> int:
    """Jobs not yet finished: queued, moved to the queue's intermediate list by a
    dequeue, or in the started registry."""
    pipe = client.pipeline(transaction=False)
    pipe.llen(QUEUE_KEY)
    pipe.llen(f"{QUEUE_KEY}:intermediate")
    pipe.zcard(f"rq:wip:{QUEUE}")
    return int(sum(pipe.execute()))


_queue = Queue(QUEUE, connection=redis.Redis.from_url(redis_url()))


def _wait(job: Job) -> Any:
    result = job.latest_result(timeout=int(RESULT_TIMEOUT_S))
    if result is None or result.type != result.Type.SUCCESSFUL:
        raise RuntimeError(f"echo failed or timed out: {result!r}")
    return result.return_value


def _enqueue_noops(n: int) -> None:
    for _ in range(n):
        _queue.enqueue(NOOP, result_ttl=0)


def _send_and_wait(n: int) -> list[Any]:
    jobs = [_queue.enqueue(ECHO, i) for i in range(n)]
    return [_wait(job) for job in jobs]


def _send_batch_and_wait(n: int) -> list[Any]:
    """``enqueue_many``: RQ's call for many jobs at once (one pipeline)."""
    jobs = _queue.enqueue_many([Queue.prepare_data(ECHO, (i,)) for i in range(n)])
    return [_wait(job) for job in jobs]


PRODUCER = QueueProducer(
    enqueue_noops=_enqueue_noops,
    round_trip=lambda i: _wait(_queue.enqueue(ECHO, i)),
    send_and_wait=_send_and_wait,
    send_batch_and_wait=_send_batch_and_wait,
)

if __name__ == "__main__":
    produce(PRODUCER, sys.argv[1:])
