"""Hook implementations only: importing this module must stay cheap and must not
import eventlet (Petiole loads every installed plugin; only an eventlet worker needs it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from petiole import hookimpl

if TYPE_CHECKING:
    from petiole.worker import Worker


@hookimpl
def petiole_pools() -> Mapping[str, Any]:
    # By path: eventlet is imported only when a worker asks for this pool, not by
    # every worker that merely lists the pools.
    return {"eventlet": "petiole_eventlet.pool:EventletPool"}


@hookimpl
def petiole_worker_start(worker: Worker) -> None:
    if worker.pool.name == "eventlet":
        from petiole_eventlet.signals import install_worker_handlers

        install_worker_handlers(worker)
