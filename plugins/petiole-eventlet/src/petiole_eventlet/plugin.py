"""Hook implementations only: importing this module must stay cheap and must not
import eventlet (Petiole loads every installed plugin; only an eventlet worker needs it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from petiole import hookimpl
from petiole.pools import PoolFactory

if TYPE_CHECKING:
    from petiole.worker import Worker


@hookimpl
def petiole_pools() -> Mapping[str, PoolFactory]:
    from petiole_eventlet.pool import EventletPool

    return {"eventlet": EventletPool}


@hookimpl
def petiole_worker_start(worker: Worker) -> None:
    if worker.pool.name == "eventlet":
        from petiole_eventlet.signals import install_worker_handlers

        install_worker_handlers(worker)
