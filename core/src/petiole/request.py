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

    # -- Celery's names for what the request holds ----------------------------------

    @property
    def is_eager(self) -> bool:
        """Run here and now (eager mode, ``Task.apply``), not by a worker."""
        return self.eager

    @property
    def called_directly(self) -> bool:
        """The task's function was called as a function: no message, no request."""
        return not self.id

    @property
    def correlation_id(self) -> str:
        return self.id

    @property
    def group(self) -> str | None:
        """The id of the group this task is a member of (``group_id``)."""
        return self.group_id

    @property
    def delivery_info(self) -> dict[str, Any]:
        """Celery's shape of where the message came from: its queue is the
        ``routing_key`` (Petiole routes by queue name only; no exchange)."""
        return {
            "exchange": "",
            "routing_key": self.queue,
            "priority": self.headers.get("priority"),
            "redelivered": self.redelivered,
        }

    def __getattr__(self, name: str) -> Any:
        # Only for a name the request does not have: say what it has.
        if name.startswith("__"):
            raise AttributeError(name)
        properties = [n for n, v in vars(Request).items() if isinstance(v, property)]
        have = sorted([*self.__dataclass_fields__, *properties])
        raise AttributeError(
            f"the request of a Petiole task has no {name!r} (it has: {', '.join(have)})"
        )

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
