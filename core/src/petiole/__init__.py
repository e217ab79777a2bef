"""Petiole: a distributed task queue with a small core and pluggable everything."""

from petiole import states
from petiole.app import Petiole
from petiole.canvas import Signature, chain, chord, group, maybe_signature, signature, subtask
from petiole.current import current_app, shared_task, use_app
from petiole.errors import (
    ConfigError,
    ContentDisallowed,
    PetioleError,
    RemoteTaskError,
    ResultTimeout,
    TaskRevoked,
)
from petiole.hookspecs import hookimpl
from petiole.logs import get_task_logger
from petiole.producer import SendManyError
from petiole.request import Request
from petiole.result import AsyncResult, GroupResult, ResultSet
from petiole.task import Task

__version__ = "0.1.0"

__all__ = [
    "AsyncResult",
    "ConfigError",
    "ContentDisallowed",
    "GroupResult",
    "Petiole",
    "PetioleError",
    "RemoteTaskError",
    "Request",
    "ResultSet",
    "ResultTimeout",
    "SendManyError",
    "Signature",
    "Task",
    "TaskRevoked",
    "__version__",
    "chain",
    "chord",
    "current_app",
    "get_task_logger",
    "group",
    "hookimpl",
    "maybe_signature",
    "shared_task",
    "signature",
    "states",
    "subtask",
    "use_app",
]
