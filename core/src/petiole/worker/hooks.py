"""Calling the worker's hooks so that no plugin can break the worker.

Each implementation is called on its own, in pluggy's order: one that raises is
logged with its plugin's name and the hook's, the others still run, and the
worker goes on. A hook no plugin implements resolves to ``None`` once (see
:func:`guarded`), so a hook on the per-message path costs one ``is None`` test.

Also here, because the CLI and every processes-pool child do both the same
way: setting up logging unless a plugin's ``petiole_setup_logging`` does it
(:func:`setup_logging`), and running ``petiole_worker_process_init``
(:func:`process_init`); and :class:`MessageHooks`, the hooks the worker calls
about the messages it receives, refuses and drops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from petiole import logs
from petiole.app import Petiole
from petiole.envelope import Envelope
from petiole.errors import PetioleError
from petiole.ports import WorkerHandle

logger = logging.getLogger("petiole.worker")

GuardedHook = Callable[..., list[Any]]
"""Called with the hook's keyword arguments; returns the non-``None`` results."""


def guarded(caller: Any) -> GuardedHook | None:
    """``caller`` (a pluggy hook caller, ``registry.hook.NAME``) made safe to call
    from the worker, or ``None`` when no plugin implements it.

    Implementations registered later are seen; a hook resolved to ``None`` stays so.
    """
    if not caller.get_hookimpls():
        return None
    name: str = caller.name

    def call(**kwargs: Any) -> list[Any]:
        impls = caller.get_hookimpls()
        if any(impl.wrapper or impl.hookwrapper for impl in impls):
            # A wrapper only means something around the others: call them together.
            return _call_whole(caller, name, kwargs)
        results = []
        for impl in reversed(impls):  # pluggy calls the last registered first
            try:
                result = _call_one(impl, kwargs)
            except Exception as exc:
                _log_failure(name, impl.plugin_name, exc)
                continue
            if result is not None:
                results.append(result)
        return results

    return call


def _call_one(impl: Any, kwargs: Mapping[str, Any]) -> Any:
    args = [kwargs[name] for name in impl.argnames]  # an implementation may take fewer
    optional = {name: kwargs[name] for name in impl.kwargnames if name in kwargs}
    return impl.function(*args, **optional)


def _call_whole(caller: Any, name: str, kwargs: Mapping[str, Any]) -> list[Any]:
    try:
        return list(caller(**kwargs))
    except Exception as exc:
        _log_failure(name, "(one of its plugins)", exc)
        return []


def _log_failure(hook: str, plugin: str, exc: Exception) -> None:
    logger.error(
        "the %s hook of plugin %r raised %s: %s; the worker goes on without it",
        hook,
        plugin,
        type(exc).__name__,
        exc,
        exc_info=exc,
    )


def setup_logging(
    app: Petiole, level: str | int | None, *, logfile: str | None = None, task_lines: bool = True
) -> bool:
    """Let plugins set up logging (``petiole_setup_logging``); unless one of them
    returns True, log the CLI's way (:func:`petiole.logs.setup_logging`).

    ``level`` ``None`` (none chosen) is INFO without the worker's line per task
    (:func:`petiole.logs.log_task_lines`); ``task_lines=False`` turns those off at
    any level (a pool child whose worker has them off). Set before the plugins
    are called, so a plugin can turn them on again. Returns True when a plugin
    did it."""
    logs.log_task_lines(task_lines and level is not None)
    level = logs.DEFAULT_LEVEL if level is None else level
    name = level.upper() if isinstance(level, str) else logging.getLevelName(level)
    hook = guarded(app.plugins.hook.petiole_setup_logging)
    if hook is not None and any(
        result is True for result in hook(app=app, loglevel=name, logfile=logfile)
    ):
        return True
    logs.setup_logging(name)
    return False


def process_init(app: Petiole, pool: str) -> None:
    """``petiole_worker_process_init`` for this process, which runs ``pool``'s tasks."""
    hook = guarded(app.plugins.hook.petiole_worker_process_init)
    if hook is not None:
        hook(app=app, pool=pool, pid=os.getpid())


class MessageHooks:
    """The hooks a worker calls about the messages it handles, resolved once at
    start: ``received`` is ``None`` unless implemented (the worker tests it per
    message); the others are called through methods, on rarer paths."""

    def __init__(self, app: Petiole, worker: WorkerHandle) -> None:
        hook = app.plugins.hook
        self._app = app
        self._worker = worker
        self.received = guarded(hook.petiole_task_received)
        self._revoked = guarded(hook.petiole_task_revoked)
        self._unknown = guarded(hook.petiole_task_unknown)
        self._rejected = guarded(hook.petiole_task_rejected)

    def revoked(self, envelope: Envelope, *, terminated: bool) -> None:
        if self._revoked is not None:
            reason = self._revocation_reason(envelope.task_id)
            self._revoked(
                worker=self._worker, envelope=envelope, reason=reason, terminated=terminated
            )

    def unknown(self, envelope: Envelope, queue: str) -> None:
        if self._unknown is not None:
            self._unknown(worker=self._worker, envelope=envelope, queue=queue)

    def rejected(
        self, queue: str, cause: str, reason: str, envelope: Envelope | None = None
    ) -> None:
        if self._rejected is not None:
            self._rejected(
                worker=self._worker, queue=queue, cause=cause, reason=reason, envelope=envelope
            )

    def _revocation_reason(self, task_id: str) -> str:
        """The reason given to ``revoke``, kept with the task's REVOKED state."""
        try:
            record = self._app.backend.get(task_id)
        except PetioleError:
            return "revoked"
        reason = record.meta.get("reason") if record is not None else None
        return reason if isinstance(reason, str) else "revoked"
