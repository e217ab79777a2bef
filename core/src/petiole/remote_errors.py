"""Carrying a task's exception from the worker to the caller, safely.

A failure is stored as a description: the exception's qualified type name, its
message, its arguments (when the result serializer can carry them) and the
formatted traceback. ``AsyncResult.get()`` rebuilds it only from classes already
present in the caller's process (builtins, Petiole's errors, and classes of
modules the caller has imported); it never imports a module named by a message.
Anything else becomes :class:`~petiole.errors.RemoteTaskError` with the original
type name and message. Either way the remote traceback is attached as a note.
"""

from __future__ import annotations

import builtins
import sys
from typing import Any

from petiole.errors import RemoteTaskError


def describe(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    module = cls.__module__
    return {
        "type": cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}",
        "message": str(exc),
        "args": list(exc.args),
    }


def _resolve(type_name: str) -> type[BaseException] | None:
    module_name, _, qualname = type_name.rpartition(".")
    module = builtins if not module_name else sys.modules.get(module_name)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None


def _attach_traceback(exc: BaseException, traceback: str | None) -> None:
    if not traceback:
        return
    note = "Remote traceback (from the worker):\n" + traceback.rstrip()
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10 has no add_note
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]


def _without_init(cls: type[BaseException], message: str) -> BaseException | None:
    """Petiole's own errors whose constructors take more than a message (ResultTooLarge,
    TimeLimitExceeded, ...) are rebuilt around the message alone: their type is
    what callers catch."""
    if not cls.__module__.startswith("petiole."):
        return None
    exc = cls.__new__(cls)
    BaseException.__init__(exc, message)
    return exc


def rebuild(description: Any, traceback: str | None) -> BaseException:
    """The exception a caller should see for a stored failure description."""
    if not isinstance(description, dict):
        exc: BaseException = RemoteTaskError("unknown", repr(description), traceback)
        _attach_traceback(exc, traceback)
        return exc
    type_name = str(description.get("type", "Exception"))
    message = str(description.get("message", ""))
    args = description.get("args")
    cls = _resolve(type_name)
    exc = RemoteTaskError(type_name, message, traceback)
    if cls is not None:
        try:
            exc = cls(*args) if isinstance(args, list) else cls(message)
        except Exception:
            exc = _without_init(cls, message) or RemoteTaskError(type_name, message, traceback)
    _attach_traceback(exc, traceback)
    return exc
