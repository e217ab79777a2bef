"""Revoking tasks, across every worker, through the result backend.

``revoke(id)`` stores the task's REVOKED state (with the reason, and whether a
running instance should be terminated) and refreshes a marker record. Every
worker reads the marker about once a second: while it exists (it expires with
results, ``result_ttl_s`` after the last revocation), workers check each task
against the backend just before starting it, and when it changes they look for
revoked tasks among those they are running. When nothing was revoked for a
day, the per-task check costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from petiole import remote_errors, states
from petiole.backend import ResultRecord
from petiole.errors import TaskRevoked

if TYPE_CHECKING:
    from petiole.app import Petiole

MARKER_ID = "petiole.revocations"


def revoke(
    app: Petiole, task_ids: Iterable[str], *, terminate: bool = False, reason: str = "revoked"
) -> None:
    """Mark tasks REVOKED: one that has not started never runs, on any worker;
    with ``terminate``, a running one is stopped (processes pool)."""
    serializer = app.result_serializer
    payload = serializer.dumps(remote_errors.describe(TaskRevoked(reason)))
    now = time.time()
    for task_id in task_ids:
        meta = {"reason": reason, "terminate": terminate}
        app.store_result(
            ResultRecord(task_id, states.REVOKED, payload, serializer.content_type, None, now, meta)
        )
    app.store_result(
        ResultRecord(MARKER_ID, states.SUCCESS, serializer.dumps(now), serializer.content_type)
    )


def marker(app: Petiole) -> float | None:
    """When the latest revocation happened, or None when none is remembered."""
    record = app.backend.get(MARKER_ID)
    if record is None:
        return None
    value = app.result_serializer_for(record.content_type).loads(record.payload)
    return float(value) if isinstance(value, (int, float)) else None
