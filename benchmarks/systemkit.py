"""What the system modules of the peer benchmarks (``redis_peers/sys_*.py``,
``cassandra_peers/sys_*.py``) share, in their workers and producer subprocesses.

Settings from the environment, the worker command lines of the systems with
Celery's command line (Celery and Petiole), and the producer side (``python
sys_<name>.py ACTION N``): the echo workloads every system runs the same way, and
the one JSON line that answers. Imported by workers too, so it imports little.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

REDIS_URL_ENV = "BENCH_REDIS_URL"

Figures = dict[str, Any]


def env_int(name: str, default: int) -> int:
    """A size or count the user may override from the environment."""
    return int(os.environ.get(name, str(default)))


def redis_url() -> str:
    """The broker every system module connects to (set by the runner)."""
    return os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0")


# -- worker command lines ---------------------------------------------------------------


def pool_options(pool: str, concurrency: int, prefetch_multiplier: int) -> list[str]:
    """The options Petiole's and Celery's ``worker`` commands both take; also what the
    setup line shows, so shown and run cannot drift apart."""
    return ["-P", pool, "-c", str(concurrency), "--prefetch-multiplier", str(prefetch_multiplier)]


def celery_options(pool: str, concurrency: int, prefetch_multiplier: int) -> list[str]:
    """``pool_options``, and no worker-to-worker events: with one worker there is
    nothing to synchronise, so they would only cost."""
    return [
        *pool_options(pool, concurrency, prefetch_multiplier),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]


def petiole_worker(app: str, options: Sequence[str]) -> list[str]:
    """``petiole worker`` for ``app`` (``module:attribute``)."""
    return [sys.executable, "-m", "petiole", "worker", "-A", app, *options, "-l", "WARNING"]


def celery_worker(app: str, options: Sequence[str]) -> list[str]:
    """``celery worker`` for ``app`` (a module)."""
    return [sys.executable, "-m", "celery", "-A", app, "worker", *options, "-l", "WARNING"]


# -- producer side ------------------------------------------------------------------------

# One action of a producer subprocess: ``N`` in, the figures to report out.
Action = Callable[[int], Figures]


def run_action(actions: Mapping[str, Action], argv: Sequence[str]) -> NoReturn:
    """``ACTION N``: run it, print its figures as the one JSON line the runner reads,
    and exit at once."""
    name, n = argv[0], int(argv[1])
    if name not in actions:
        raise SystemExit(f"unknown action {name!r}")
    print(json.dumps(actions[name](n)), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip slow interpreter teardown (connection pools, driver threads)


@dataclass(frozen=True, kw_only=True)
class EchoProducer:
    """How a system sends ``echo`` tasks and waits for their results."""

    round_trip: Callable[[int], Any]  # send echo(i), wait for its result, return it
    send_and_wait: Callable[[int], list[Any]]  # send echo(0..n-1), wait for all, return them


def warm_up(producer: EchoProducer, n: int) -> None:
    """``n`` round trips, then a batch of ``n``: connections and caches ready."""
    for i in range(n):
        check(producer.round_trip(i), i)
    check(producer.send_and_wait(n), list(range(n)))


def timed_batch(producer: EchoProducer, n: int) -> Figures:
    """W2: send ``n`` echo tasks and wait for every result; wall and producer CPU time."""
    check(producer.round_trip(-1), -1)  # connected and warm before the clock starts
    started, cpu = time.perf_counter(), time.process_time()
    values = producer.send_and_wait(n)
    figures = {"seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}
    check(values, list(range(n)))
    return figures


def check(got: Any, expected: Any) -> None:
    if got != expected:
        raise SystemExit(f"wrong result: expected {expected!r}, got {got!r}"[:300])
