"""Where the current app is kept: the ``use_app`` override of this thread or asyncio
task, and the process default. :mod:`petiole.current` is the API over it
(``current_app``, ``use_app``, ``set_default_app``); this module holds only the
state, so that the modules below the app that need the current app
(``AsyncResult(task_id)`` with no app, as in Celery) read it without importing
what sits above them.

Apps are kept as plain objects: each reader states the Protocol it needs of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from petiole.errors import ConfigError

NO_APP = "no Petiole app has been created yet; create one with Petiole(...) or pass app=..."

_override: ContextVar[object | None] = ContextVar("petiole_current_app", default=None)
_default: object | None = None


def in_effect() -> object | None:
    """The innermost ``use_app`` block's app here, else the process default; None
    when there is neither."""
    app = _override.get()
    return _default if app is None else app


def required() -> object:
    """:func:`in_effect`, or :class:`~petiole.errors.ConfigError` when no app exists."""
    app = in_effect()
    if app is None:
        raise ConfigError(NO_APP)
    return app


def default() -> object | None:
    """The process default, ignoring ``use_app`` blocks."""
    return _default


def set_default(app: object | None) -> None:
    global _default
    _default = app


@contextmanager
def overriding(app: object) -> Iterator[None]:
    """``app`` is in effect inside the block, in this thread or asyncio task only."""
    token = _override.set(app)
    try:
        yield
    finally:
        _override.reset(token)
