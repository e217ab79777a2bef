"""When a process that runs tasks itself should make way for a fresh one.

``max_tasks_per_child`` and ``max_memory_per_child_mb`` replace a process after
that many tasks, or once a task leaves it using more resident memory than that:
the processes pool's children, and worker processes under a supervisor that run
tasks in their own process (``petiole worker --workers N -P solo``).
"""

from __future__ import annotations

import os


def resident_mb() -> float:
    """This process's resident memory now (Linux), else its peak (elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Retirement:
    """Counts finished tasks; says when the process is due for replacement. A limit
    of 0 is no limit."""

    def __init__(self, max_tasks: int, max_memory_mb: float) -> None:
        self.max_tasks = max_tasks
        self.max_memory_mb = max_memory_mb
        self.tasks_run = 0

    def after_task(self) -> str | None:
        """Count one finished task; why the process should now retire, or None."""
        self.tasks_run += 1
        if self.max_tasks and self.tasks_run >= self.max_tasks:
            return f"ran {self.tasks_run} tasks (max_tasks_per_child)"
        if self.max_memory_mb:
            used = resident_mb()
            if used > self.max_memory_mb:
                return f"uses {used:.0f} MB (max_memory_per_child_mb {self.max_memory_mb:g})"
        return None
