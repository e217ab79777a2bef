"""How ``petiole worker`` lays out its processes: one worker, or worker processes
under a supervisor; and what the default pool, ``prefork``, means there.

``prefork`` (the default, Celery's name for its own) runs ``-c`` worker processes
under a supervisor, each reserving its own messages and running them one at a
time in its own process (the solo pool): no hand-off to a child per task, and,
with the supervisor to replace a process, hard time limits, ``revoke(terminate=
True)`` and recycling as the processes pool has them (docs/worker.md). Each
process holds ``4 x prefetch_multiplier`` messages (one when the multiplier is
1), the places a processes-pool child has.

A worker embedded in a program cannot fork itself into a supervisor, nor can a
system without ``fork()``: there the pool registry's ``prefork`` is the
processes pool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from petiole.config import Settings
from petiole.errors import ConfigError

PREFORK = "prefork"
#: Messages a prefork worker process holds per unit of the prefetch multiplier.
PLACES_PER_PROCESS = 4


@dataclass(frozen=True)
class Layout:
    """What ``petiole worker`` starts."""

    #: Worker processes under a supervisor; 0: the ``petiole worker`` process is the worker.
    processes: int
    #: What each worker is given (None: its settings decide).
    pool: str | None
    concurrency: int | None
    prefetch_multiplier: int | None
    #: Chosen as the prefork pool (not ``--workers N -P solo`` asked for by hand): how
    #: it is described, not what it starts, so layouts compare without it.
    prefork: bool = field(default=False, compare=False)


def layout(
    settings: Settings,
    *,
    pool: str | None,
    worker_processes: int | None,
    concurrency: int | None,
    prefetch_multiplier: int | None,
    autoscaling: bool,
) -> Layout:
    """The layout for these options (None: not given) over ``settings``."""
    processes = settings.worker_processes if worker_processes is None else worker_processes
    if processes < 0:
        raise ConfigError(
            f"worker_processes must be 0 (this process is the worker) or a number of "
            f"worker processes to supervise, not {processes!r}"
        )
    if (pool or settings.worker_pool) != PREFORK:
        return Layout(processes, pool, concurrency, prefetch_multiplier)
    if not hasattr(os, "fork"):  # Windows: the registry's prefork, the processes pool
        return Layout(processes, pool, concurrency, prefetch_multiplier)
    if autoscaling:
        raise ConfigError(
            "--autoscale needs a pool that can resize: -P processes or -P threads; the "
            "prefork default runs a fixed number of worker processes (-c)"
        )
    count = processes or concurrency or settings.worker_concurrency or os.cpu_count() or 1
    multiplier = prefetch_multiplier or settings.prefetch_multiplier
    per_process = PLACES_PER_PROCESS * multiplier if multiplier > 1 else 1
    return Layout(count, "solo", None, per_process, prefork=True)
