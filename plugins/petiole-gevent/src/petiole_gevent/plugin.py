"""Hook implementations only: importing this module must stay cheap and must not
import gevent (Petiole loads every installed plugin; only a gevent worker needs it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from petiole import hookimpl

if TYPE_CHECKING:
    from petiole.worker import Worker


@hookimpl
def petiole_pools() -> Mapping[str, Any]:
    # By path: gevent is imported only when a worker asks for this pool, not by
    # every worker that merely lists the pools.
    return {"gevent": "petiole_gevent.pool:GeventPool"}


@hookimpl
def petiole_worker_start(worker: Worker) -> None:
    if worker.pool.name == "gevent":
        from petiole_gevent.signals import run_worker_handlers_in_greenlets

        run_worker_handlers_in_greenlets(worker)
