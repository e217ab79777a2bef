"""Finding the user's app from ``-A module[:attribute]``.

``-A proj`` looks where Celery's ``-A proj`` would, in this order, and takes the
first app it finds:

1. the module ``proj`` itself: its attribute ``app``, else its only
   :class:`~petiole.app.Petiole` instance;
2. the submodules ``proj.petiole`` and ``proj.celery`` (Celery's customary
   ``proj/celery.py``), each the same way;
3. the submodule ``proj.app``.

``-A proj:name`` takes the attribute ``name`` of ``proj``, and nothing else.
When nothing is found, the error lists every place it looked.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from petiole.app import Petiole
from petiole.errors import ConfigError, ResultTimeout

#: The submodules of a package ``-A`` searches, in order, when the package has no app.
SUBMODULES = ("petiole", "celery", "app")


class AppImportError(ConfigError):
    """Importing the app module raised: says so, since the error itself (a timeout,
    a connection refused) often reads as if the worker had failed at its own work."""

    def __init__(self, spec: str, exc: BaseException, *, module: str | None = None) -> None:
        module = module or spec.partition(":")[0]
        message = (
            f"importing the app module {module!r} (-A {spec}) failed: {type(exc).__name__}: {exc}"
        )
        if isinstance(exc, ResultTimeout):
            message += (
                f"; {module} waits for a task result at import time, before any worker runs: "
                'move calling code out of the tasks module, or under `if __name__ == "__main__":`'
            )
        super().__init__(message)


def load_app(spec: str) -> Petiole:
    """The app ``spec`` names (see the module's docstring).

    The current directory is put on ``sys.path`` first, as ``python -m`` would,
    so ``-A proj.tasks`` finds ``./proj/tasks.py``. The app's ``main_path`` is set
    to where it was found (``proj.petiole:app``), for processes that import it again.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ConfigError(f"-A {spec!r}: expected module or module:attribute")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    module = _import(spec, module_name)
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Petiole):
            apps = sorted(name for name, obj in vars(module).items() if isinstance(obj, Petiole))
            there = f"; its Petiole apps: {', '.join(apps)}" if apps else ""
            if not hasattr(module, attr):
                what = f"{module_name} has no attribute {attr!r}"
            else:
                what = f"{module_name}.{attr} is not a Petiole app (got {type(found).__name__})"
            raise ConfigError(f"app {spec!r}: {what}{there}")
        return _remember(found, module_name, attr)
    looked: list[str] = []
    hit = _app_in(module, looked)
    if hit is not None:
        return _remember(hit[1], module_name, hit[0])
    if hasattr(module, "__path__"):  # a package: look in its customary submodules
        for submodule_name in (f"{module_name}.{name}" for name in SUBMODULES):
            submodule = _import_submodule(spec, submodule_name)
            if submodule is None:
                looked.append(f"{submodule_name} (no such module)")
                continue
            hit = _app_in(submodule, looked)
            if hit is not None:
                return _remember(hit[1], submodule_name, hit[0])
    raise ConfigError(
        f"no Petiole app found for -A {spec}; looked in: {'; '.join(looked)}. "
        "Create one in one of these (app = Petiole(...)), or name it with -A module:attribute"
    )


def _import(spec: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(
                f"cannot import the app module {module_name!r} (from -A {spec!r}): {exc}; "
                f"run from the directory that contains it, or fix the path"
            ) from exc
        raise AppImportError(spec, exc) from exc
    except Exception as exc:
        raise AppImportError(spec, exc) from exc


def _import_submodule(spec: str, name: str) -> ModuleType | None:
    """The submodule ``name``, or None when there is no such module."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise AppImportError(spec, exc, module=name) from exc
    except Exception as exc:
        raise AppImportError(spec, exc, module=name) from exc


def _app_in(module: ModuleType, looked: list[str]) -> tuple[str, Petiole] | None:
    """``module``'s attribute ``app``, else its only Petiole instance, with its
    attribute name; None (and where it looked, in ``looked``) when it has none."""
    app = getattr(module, "app", None)
    if isinstance(app, Petiole):
        return "app", app
    candidates = [(k, v) for k, v in vars(module).items() if isinstance(v, Petiole)]
    if len(candidates) > 1:
        names = ", ".join(k for k, _ in candidates)
        raise ConfigError(
            f"module {module.__name__!r} has {len(candidates)} Petiole apps ({names}); "
            "name one with -A module:attribute"
        )
    if not candidates:
        looked.append(f"{module.__name__} (no Petiole app in it)")
        return None
    return candidates[0]


def _remember(app: Petiole, module_name: str, attr: str) -> Petiole:
    if app.main_path is None:
        app.main_path = f"{module_name}:{attr}"
    return app
