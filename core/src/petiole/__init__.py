"""Petiole: a distributed task queue with a small core and pluggable everything."""

from petiole import states
from petiole.app import Petiole
from petiole.errors import (
    ConfigError,
    ContentDisallowed,
    PetioleError,
    RemoteTaskError,
    ResultTimeout,
    TaskRevoked,
)
from petiole.hookspecs import hookimpl
from petiole.request import Request
from petiole.result import AsyncResult
from petiole.task import Task

__version__ = "0.1.0"

__all__ = [
    "AsyncResult",
    "ConfigError",
    "ContentDisallowed",
    "Petiole",
    "PetioleError",
    "RemoteTaskError",
    "Request",
    "ResultTimeout",
    "Task",
    "TaskRevoked",
    "__version__",
    "hookimpl",
    "states",
]
