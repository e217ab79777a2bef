"""The context of one task execution, as a bound task sees it in ``self.request``."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


# Not frozen: made once per task, and a frozen dataclass's __init__ sets each of its 16
# fields through object.__setattr__ (3.5 us against ~1). Celery's request is not
# read-only either; what a task changes in it affects nothing the worker does.
@dataclass
class Request:
    id: str
    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    retries: int = 0
    delivery_count: int = 1
    queue: str = ""
    eta: float | None = None
    expires: float | None = None
    root_id: str | None = None
    parent_id: str | None = None
    group_id: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    hostname: str = ""
    eager: bool = False
    #: Ids of tasks sent while this one runs (recorded as its children).
    children: list[str] = field(default_factory=list)

    @property
    def redelivered(self) -> bool:
        """True when this message was delivered before (its earlier run may have
        done some of the work): make tasks idempotent."""
        return self.delivery_count > 1

    @property
    def reply_to(self) -> str | None:
        """Where the client that sent this task receives its results, when its
        result backend delivers them to the sender (``rpc://``); else None."""
        value = self.headers.get("reply_to")
        return value if isinstance(value, str) else None


current_request: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "petiole_current_request", default=None
)

#: True while the worker continues a finished task's workflow (its callbacks, the
#: rest of its chain, its chord): what it sends then belongs to the workflow, and
#: its results go where the task's did (``reply_to``).
continuing_workflow: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "petiole_continuing_workflow", default=False
)
