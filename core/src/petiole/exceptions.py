"""Celery's ``celery.exceptions``, for code that comes from Celery.

Petiole's errors live in :mod:`petiole.errors`; this module offers them under
the names Celery code imports: the ones spelled alike (``Retry``,
``SoftTimeLimitExceeded``, ``TimeLimitExceeded``, ``MaxRetriesExceededError``,
``WorkerLostError``, ``ChordError``), and Celery's spellings of the others
(``TaskRevokedError`` is :class:`~petiole.errors.TaskRevoked`, ``TimeoutError``
:class:`~petiole.errors.ResultTimeout`). A Celery name with no Petiole
counterpart (``Ignore``, ``Reject``, ...) fails to import saying what to do
instead: an :class:`ImportError` even as an attribute (``from ... import``
would replace an :class:`AttributeError` with its own message), so
``hasattr(petiole.exceptions, "Reject")`` raises rather than answering False.
"""

from __future__ import annotations

from typing import NoReturn

from petiole.errors import (
    ChordError,
    MaxRetriesExceededError,
    PetioleError,
    ResultTimeout,
    Retry,
    SoftTimeLimitExceeded,
    TaskRevoked,
    TimeLimitExceeded,
    WorkerLostError,
)

#: Celery's ``TaskRevokedError``.
TaskRevokedError = TaskRevoked
#: Celery's ``TimeoutError`` (a :class:`ResultTimeout` is a builtin ``TimeoutError`` too).
TimeoutError = ResultTimeout
#: Celery's base class of its errors.
CeleryError = PetioleError

# Celery's names Petiole has nothing for: what to write instead.
_ABSENT = {
    "Ignore": "a task that should not record its outcome returns normally with "
    "`ignore_result=True` on the task",
    "Reject": "raise an exception (the task fails, recorded), or set `dead_letter_on_failure` "
    "to move its message to the dead-letter store",
    "NotRegistered": "an unregistered task's message is dead-lettered by the worker "
    "(`petiole dlq list`): there is no exception to catch",
    "QueueNotFound": "queues need no declaring: any name works",
    "ImproperlyConfigured": "configuration errors are petiole.errors.ConfigError",
}

__all__ = [
    "CeleryError",
    "ChordError",
    "MaxRetriesExceededError",
    "Retry",
    "SoftTimeLimitExceeded",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
]


def __getattr__(name: str) -> NoReturn:
    if name in _ABSENT:
        # An ImportError, not an AttributeError: `from ... import` replaces the
        # latter with its own "cannot import name", losing what to do instead.
        raise ImportError(
            f"petiole.exceptions has no {name} (Celery's celery.exceptions.{name}): "
            f"{_ABSENT[name]}",
            name=name,
        )
    raise AttributeError(f"module 'petiole.exceptions' has no attribute {name!r}")
