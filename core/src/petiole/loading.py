"""Finding the user's app from ``-A module[:attribute]``."""

from __future__ import annotations

import importlib
import os
import sys

from petiole.app import Petiole
from petiole.errors import ConfigError, ResultTimeout


class AppImportError(ConfigError):
    """Importing the app module raised: says so, since the error itself (a timeout,
    a connection refused) often reads as if the worker had failed at its own work."""

    def __init__(self, spec: str, exc: BaseException) -> None:
        module = spec.partition(":")[0]
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
    """Import ``module`` and return its app: the named attribute, else an
    attribute called ``app``, else the module's only :class:`Petiole` instance.

    The current directory is put on ``sys.path`` first, as ``python -m`` would,
    so ``-A proj.tasks`` finds ``./proj/tasks.py``.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ConfigError(f"-A {spec!r}: expected module or module:attribute")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(
                f"cannot import the app module {module_name!r} (from -A {spec!r}): {exc}; "
                f"run from the directory that contains it, or fix the path"
            ) from exc
        raise AppImportError(spec, exc) from exc
    except Exception as exc:
        raise AppImportError(spec, exc) from exc
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Petiole):
            raise ConfigError(
                f"{module_name}.{attr} is not a Petiole app (got {type(found).__name__})"
            )
        app = found
    elif isinstance(getattr(module, "app", None), Petiole):
        app, attr = module.app, "app"
    else:
        candidates = [(k, v) for k, v in vars(module).items() if isinstance(v, Petiole)]
        if len(candidates) != 1:
            raise ConfigError(
                f"module {module_name!r} has {len(candidates)} Petiole apps; "
                "name one with -A module:attribute"
            )
        attr, app = candidates[0]
    if app.main_path is None:
        app.main_path = f"{module_name}:{attr}"
    return app
