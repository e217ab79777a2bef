"""A worker running in background threads of the test process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from petiole.app import Petiole
from petiole.worker import Worker


@contextmanager
def start_worker(
    app: Petiole, *, pool: str = "threads", concurrency: int = 2, **options: Any
) -> Iterator[Worker]:
    """Run a worker for ``app`` while the block runs; stop it gracefully after.

    Uses the threads pool by default, since test apps are often not importable
    by path (which the processes pool needs). ``options`` go to :class:`Worker`.
    """
    options.setdefault("reserve_wait_s", 0.2)
    worker = Worker(app, pool=pool, concurrency=concurrency, **options)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
