"""``app.autodiscover_tasks(packages)``: import each package's tasks module.

As Celery's: for ``["proj.users", "proj.billing"]`` the modules
``proj.users.tasks`` and ``proj.billing.tasks`` are imported, so the tasks they
define are registered. A package without the module is skipped; a tasks module
that fails to import is an error naming it.

By default the imports wait until the app is *finalized* — when a worker starts
(:func:`run_pending`), where the tasks must be registered — so a web process
that only sends tasks never imports them, and ``packages`` may be a function
returning the list (it often reads settings not ready when the app is
created). ``force=True`` imports at once. A call after the app was finalized
imports at once too.

The app is the current app (:func:`petiole.current.use_app`) while the modules
are imported, so a module that asks for it gets this one.
"""

from __future__ import annotations

import importlib
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from petiole.current import TaskApp, use_app
from petiole.errors import ConfigError

Packages = Sequence[str] | Callable[[], Sequence[str]]


@dataclass(frozen=True)
class _Discovery:
    packages: Packages
    related_name: str | None


_lock = threading.RLock()
_pending: weakref.WeakKeyDictionary[TaskApp, list[_Discovery]] = weakref.WeakKeyDictionary()
_finalized: weakref.WeakSet[TaskApp] = weakref.WeakSet()


def autodiscover_tasks(
    app: TaskApp,
    packages: Packages,
    related_name: str | None = "tasks",
    force: bool = False,
) -> list[str]:
    """Import ``<package>.<related_name>`` for each package (``related_name=None``:
    the package itself) when ``app`` is finalized, or now with ``force`` or when it
    already was. Returns the modules imported now (none when deferred).

    Raises :class:`~petiole.errors.ConfigError` when a package cannot be imported,
    and :class:`ImportError` naming the module when a tasks module fails to.
    """
    discovery = _Discovery(packages, related_name)
    with _lock:
        if not force and app not in _finalized:
            _pending.setdefault(app, []).append(discovery)
            return []
    return _run(app, discovery)


def run_pending(app: TaskApp) -> list[str]:
    """Finalize ``app``: run its deferred discoveries, once (a worker calls this
    as it starts; later calls import nothing more). Returns the modules imported."""
    with _lock:
        _finalized.add(app)
        pending = _pending.pop(app, [])
        imported: list[str] = []
        for done, discovery in enumerate(pending):
            try:
                imported += _run(app, discovery)
            except BaseException:
                # Not finalized after all: a second attempt (once fixed) runs what is left.
                _finalized.discard(app)
                _pending[app] = pending[done:] + _pending.get(app, [])
                raise
    return imported


def _run(app: TaskApp, discovery: _Discovery) -> list[str]:
    packages = discovery.packages
    names = packages() if callable(packages) else packages
    if isinstance(names, str):  # a lone name would be read letter by letter
        names = [names]
    imported: list[str] = []
    with use_app(app):
        for package in names:
            module = _import_related(package, discovery.related_name)
            if module is not None:
                imported.append(module)
    return imported


def _import_related(package: str, related_name: str | None) -> str | None:
    """Import ``package.related_name``; its name, or None when it does not exist."""
    try:
        importlib.import_module(package)
    except ImportError as exc:
        raise ConfigError(
            f"autodiscover_tasks: cannot import the package {package!r}: {exc}"
        ) from exc
    if related_name is None:
        return package
    name = f"{package}.{related_name}"
    try:
        importlib.import_module(name)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == name:
            return None  # no tasks module in this package: nothing to discover
        raise ImportError(
            f"importing {name} (autodiscover_tasks) failed: {exc}", name=exc.name, path=exc.path
        ) from exc
    return name


def finalize(app: TaskApp, modules: Sequence[str]) -> None:
    """What a worker imports before it runs a task, in each process that runs tasks:
    the deferred :func:`autodiscover_tasks` packages (:func:`run_pending`), then
    ``modules`` (the ``imports`` and ``include`` settings: ``settings.task_modules``)."""
    run_pending(app)
    import_modules(app, modules)


def import_modules(app: TaskApp, modules: Sequence[str]) -> None:
    """Import ``modules`` (the ``imports`` and ``include`` settings) with ``app`` as
    the current app. Raises :class:`~petiole.errors.ConfigError` naming the module
    and the settings when one fails to import."""
    with use_app(app):
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:
                raise ConfigError(
                    f"imports: cannot import {name!r} (a module the `imports` or `include` "
                    f"setting lists): {type(exc).__name__}: {exc}"
                ) from exc
