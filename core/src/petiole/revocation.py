"""Revoking tasks, across every worker, through the coordination store.

``revoke(id)`` stores the task's REVOKED state as its result (with the reason,
and whether a running instance should be terminated), leaves a revocation mark
for it in the app's coordination store (:mod:`petiole.coordination`), and
refreshes a marker there. Every worker reads the marker about once a second:
while it exists (it expires with results, ``result_ttl_s`` after the last
revocation), workers check each task's mark just before starting it, and when
it changes they look for marks among the tasks they are running. When nothing
was revoked for a day, the per-task check costs nothing.

The marks, not the stored states, are what workers obey: a result backend that
only delivers results (``rpc://``) cannot be read back, and an app without a
coordination store gets :class:`~petiole.coordination.CoordinationUnavailable`
from ``revoke`` before anything is stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from petiole import celery_names, coordination, remote_errors, states
from petiole.backend import ResultRecord
from petiole.errors import ConfigError, TaskRevoked
from petiole.ports import ResultsApp

MARKER_KEY = "petiole:revocations"
# A task's mark says whether a running instance should be terminated.
TERMINATE = "terminate"
DO_NOT_START = "revoked"


def mark_key(task_id: str) -> str:
    """The coordination key of a task's revocation mark."""
    return f"petiole:revoked:{task_id}"


def refuse_celery_options(options: Mapping[str, Any]) -> None:
    """Refuse options of Celery's ``revoke()`` Petiole has not (``signal=``,
    ``wait=``, ``timeout=``), saying what it does instead; any other as unknown."""
    if not options:
        return
    translated = celery_names.translate("revoke option", options, petiole_names=("terminate",))
    if translated.messages:
        raise celery_names.CelerySpellingError(translated.messages, source="revoke(...)")
    unknown = ", ".join(map(repr, sorted(translated.values)))
    raise ConfigError(f"revoke() got unknown option(s): {unknown} (it takes terminate=, reason=)")


def revoke(
    app: ResultsApp, task_ids: Iterable[str], *, terminate: bool = False, reason: str = "revoked"
) -> dict[str, str]:
    """Mark tasks REVOKED: one that has not started never runs, on any worker;
    with ``terminate``, a running one is stopped (prefork and processes pools).

    A task that has finished keeps its result (a revocation is about running it,
    as in Celery): returned, with its state. Its mark is left all the same, so a
    copy of its message delivered again does not run."""
    store = coordination.required(lambda: app.coordination, coordination.REVOKE)
    ids = list(task_ids)
    finished = {i: r.state for i, r in app.backend.get_many(ids).items() if r.ready}
    for task_id in ids:
        if task_id not in finished:
            app.store_result(_revoked_record(app, task_id, reason, terminate=terminate))
    ttl = app.settings.result_ttl_s
    ttl_s = ttl if ttl > 0 else None
    now = time.time()
    for task_id in ids:
        store.put_mark(mark_key(task_id), TERMINATE if terminate else DO_NOT_START, ttl_s=ttl_s)
    store.put_mark(MARKER_KEY, repr(now), ttl_s=ttl_s)
    return finished


def record_terminated(app: ResultsApp, task_id: str, reason: str) -> None:
    """Record REVOKED for a task ``revoke(terminate=True)`` stopped, unless it finished
    first. ``revoke`` recorded it already, but a running task may have written a
    state of its own over that record since (``update_state``), which would
    otherwise be its last word."""
    stored = app.backend.get(task_id)
    if stored is None or not stored.ready:
        app.store_result(_revoked_record(app, task_id, reason, terminate=True))


def _revoked_record(app: ResultsApp, task_id: str, reason: str, *, terminate: bool) -> ResultRecord:
    serializer = app.result_serializer
    payload = serializer.dumps(remote_errors.describe(TaskRevoked(reason)))
    meta = {"reason": reason, "terminate": terminate}
    return ResultRecord(
        task_id, states.REVOKED, payload, serializer.content_type, None, time.time(), meta
    )


def marker(app: ResultsApp) -> float | None:
    """When the latest revocation happened, or None when none is remembered."""
    value = app.coordination.get_marks([MARKER_KEY]).get(MARKER_KEY)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def revoked(app: ResultsApp, task_ids: Sequence[str]) -> dict[str, bool]:
    """Those of ``task_ids`` that are revoked, each with whether to terminate it."""
    keys = {mark_key(task_id): task_id for task_id in task_ids}
    marks = app.coordination.get_marks(list(keys))
    return {keys[key]: value == TERMINATE for key, value in marks.items()}
