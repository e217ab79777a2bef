"""Signatures: a task call (name, arguments, options) as a value that can travel.

A :class:`Signature` is a ``dict`` of JSON types — ``task``, ``args``,
``kwargs``, ``options``, ``immutable``, ``subtask_type`` — so it can be put in
a message header, stored, and rebuilt on another machine with
:func:`from_dict`. ``add.s(2)`` is a *partial*: when it runs as a callback or
the next step of a chain, the parent's result is put in front of its
arguments, unless it is immutable (``add.si(2, 3)``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from petiole import current
from petiole.envelope import Workflow
from petiole.errors import ConfigError
from petiole.ids import new_id
from petiole.producer import Producer
from petiole.result import AsyncResult

# Options a signature carries to apply_async; anything else is a typo we report.
SEND_OPTIONS = frozenset(
    {
        "countdown",
        "eta",
        "expires",
        "priority",
        "queue",
        "task_id",
        "headers",
        "serializer",
        "compression",
        "soft_time_limit_s",
        "time_limit_s",
        "link",
        "link_error",
    }
)


class Signature(dict[str, Any]):
    """One task call, ready to send: ``add.s(2, 3)``, or ``signature("proj.add", (2, 3))``."""

    subtask_type: str | None = None
    # Kinds of signature by ``subtask_type``, filled as :mod:`petiole.canvas.workflows`
    # defines them (the package imports it), so a signature rebuilt from its dict
    # is a chain or group again without this module importing that one.
    _kinds: ClassVar[dict[str, type[Signature]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.subtask_type is not None:
            Signature._kinds[cls.subtask_type] = cls

    def __init__(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        immutable: bool = False,
        app: Producer | None = None,
    ) -> None:
        super().__init__(
            task=task,
            args=list(args),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}),
            immutable=immutable,
            subtask_type=self.subtask_type,
        )
        unknown = set(self["options"]) - SEND_OPTIONS - {"chord", "group_id", "group_index"}
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(sorted(unknown))} for {task!r}; "
                f"valid: {', '.join(sorted(SEND_OPTIONS))}"
            )
        self._app = app

    # -- fields ------------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self["task"])

    @property
    def args(self) -> list[Any]:
        return list(self["args"])

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self["kwargs"])

    @property
    def options(self) -> dict[str, Any]:
        return dict(self["options"])

    @property
    def immutable(self) -> bool:
        return bool(self["immutable"])

    @property
    def id(self) -> str | None:
        """The task id, once :meth:`freeze` (or ``.set(task_id=...)``) assigned one."""
        task_id = self["options"].get("task_id")
        return str(task_id) if task_id is not None else None

    @property
    def app(self) -> Producer:
        """The app it sends through: the one it was made with (``task.s()``,
        ``signature(..., app=)``), else the current app (:mod:`petiole.current`),
        asked when it is sent, as Celery's."""
        if self._app is None:
            return current.current_app()
        return self._app

    def bind(self, app: Producer) -> Signature:
        self._app = app
        return self

    def __repr__(self) -> str:
        args = [repr(a) for a in self["args"]] + [f"{k}={v!r}" for k, v in self["kwargs"].items()]
        return f"{self.name}{'!' if self.immutable else ''}({', '.join(args)})"

    # -- building -------------------------------------------------------------------

    def clone(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Signature:
        """A copy with ``args`` put in front and ``kwargs``/``options`` merged in
        (a no-op for the arguments of an immutable signature)."""
        twin = from_dict(copy.deepcopy(dict(self)), self._app)
        if not twin.immutable:
            twin["args"] = list(args) + twin["args"]
            twin["kwargs"].update(kwargs or {})
        twin["options"].update(options)
        return twin

    def set(self, **options: Any) -> Signature:
        """Set send options (``queue``, ``countdown``, ``priority``, ...) in place; returns self."""
        unknown = set(options) - SEND_OPTIONS
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(sorted(SEND_OPTIONS))}"
            )
        self["options"].update(options)
        return self

    def link(self, callback: Signature) -> Signature:
        """Run ``callback`` with this task's result when it succeeds."""
        callback.freeze()  # its id is known now, so it can be listed among the children
        self["options"].setdefault("link", []).append(dict(callback))
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Run ``errback`` with this task's id when it fails for good."""
        errback.freeze()
        self["options"].setdefault("link_error", []).append(dict(errback))
        return errback

    def freeze(self) -> AsyncResult:
        """Give the call its task id now, so its result can be referred to before it runs."""
        self["options"].setdefault("task_id", new_id())
        return self.app.AsyncResult(str(self["options"]["task_id"]))

    def last_id(self) -> str:
        """The id whose result is this signature's result (a chain's is its last task's)."""
        self.freeze()
        return str(self["options"]["task_id"])

    def __or__(self, other: Signature) -> Signature:  # type: ignore[override]
        """``a.s() | b.s()``: the chain of both."""
        make_chain: Callable[..., Signature] = Signature._kinds["chain"]
        return make_chain(self, other)

    # -- sending -------------------------------------------------------------------------

    def apply_async(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Any:
        """Send the call; ``args`` go in front of the signature's own (unless immutable)."""
        freeze_callbacks(options)
        call = self.clone(args, kwargs, **options)
        opts = call.options
        workflow = Workflow(
            callbacks=[dict(s) for s in _as_list(opts.pop("link", None) or [])],
            errbacks=[dict(s) for s in _as_list(opts.pop("link_error", None) or [])],
            chain=opts.pop("chain", None) or (),
            chord=opts.pop("chord", None),
            group_id=opts.pop("group_id", None),
            group_index=opts.pop("group_index", None),
        )
        return call.app.send_task(call.name, call.args, call.kwargs, _workflow=workflow, **opts)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task here and now, in this process, and return what it returns
        (Celery's ``sig()``); ``args`` go in front of the signature's own. The task
        must be registered with the signature's app. Chains, groups and chords are
        sent instead, as Celery's are."""
        call = self.clone(args, kwargs)
        task = call.app.tasks.get(call.name)
        if task is None:
            raise ConfigError(
                f"calling a signature runs its task in this process, and {call.name!r} is "
                "not registered with this app: send it with .delay() or .apply_async()"
            )
        return task(*call.args, **call.kwargs)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def links_workflow(link: Any, link_error: Any) -> Workflow:
    """The workflow of a call given ``link``/``link_error`` (a signature or a list of
    them): each gets its id now, so the caller can follow its result."""
    freeze_callbacks({"link": link, "link_error": link_error})
    for option, given in (("link", link), ("link_error", link_error)):
        for linked in _as_list(given or []):
            if not isinstance(linked, Mapping):
                raise ConfigError(f"{option}= takes signatures (task.s(...)), got {linked!r}")
    return Workflow(
        callbacks=[dict(s) for s in _as_list(link or [])],
        errbacks=[dict(s) for s in _as_list(link_error or [])],
    )


def freeze_callbacks(options: Mapping[str, Any]) -> None:
    """Give ``link``/``link_error`` signatures passed to apply_async their ids now,
    so the caller can follow their results."""
    for option in ("link", "link_error"):
        for callback in _as_list(options.get(option) or []):
            if isinstance(callback, Signature):
                callback.freeze()


def signature(
    task: str | Mapping[str, Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    app: Producer | None = None,
    **options: Any,
) -> Signature:
    """A signature by task name (it need not be importable here), or rebuilt from its
    dict. Without ``app``, it sends through the current app when it is sent."""
    if isinstance(task, Mapping):
        return from_dict(task, app)
    return Signature(task, args, kwargs, options, app=app)


#: Celery's older name for :func:`signature`, kept so ported code runs as written.
subtask = signature


def maybe_signature(
    value: Signature | Mapping[str, Any] | None, app: Producer | None = None
) -> Signature | None:
    """``value`` as a signature: None stays None, a signature is returned as it is
    (bound to ``app`` when given), a dict (a signature sent as an argument or
    header) is rebuilt (Celery's ``maybe_signature``, for tasks that take a
    callback as an argument)."""
    if value is None:
        return None
    if isinstance(value, Signature):
        return value.bind(app) if app is not None else value
    if isinstance(value, Mapping):
        return from_dict(value, app)
    raise TypeError(f"expected a signature, its dict or None, got {type(value).__name__}")


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "task": str,
    "args": list,
    "kwargs": dict,
    "options": dict,
    "immutable": bool,
    "subtask_type": (str, type(None)),
}


def check_signature(data: Any, where: str) -> None:
    """Raise :class:`ValueError` naming ``where`` unless ``data`` has the JSON shape
    of a signature (and so do the signatures nested in it: links, and the members
    of a chain, group or chord). A worker checks a message's workflow headers with
    this before the task runs, so a malformed one is a dead letter, not a crash
    after the task's side effects."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a signature object, got {type(data).__name__}")
    for field, kind in _FIELD_TYPES.items():
        if not isinstance(data.get(field), kind):
            raise ValueError(f"{where}: field {field!r} is missing or of the wrong type")
    options = data["options"]
    for link in ("link", "link_error"):
        for i, linked in enumerate(options.get(link) or ()):
            check_signature(linked, f"{where}.options.{link}[{i}]")
    kwargs, kind = data["kwargs"], data["subtask_type"]
    if kind in ("chain", "group"):
        tasks = kwargs.get("tasks")
        if not isinstance(tasks, list):
            raise ValueError(f"{where}: a {kind} needs a list of tasks")
        for i, member in enumerate(tasks):
            check_signature(member, f"{where}.tasks[{i}]")
    elif kind == "chord":
        check_signature(kwargs.get("header"), f"{where}.header")
        if kwargs.get("body") is not None:
            check_signature(kwargs["body"], f"{where}.body")


def from_dict(data: Mapping[str, Any], app: Producer | None) -> Signature:
    """Rebuild the right kind of signature from its JSON-safe form."""
    cls = Signature._kinds.get(str(data.get("subtask_type")), Signature)
    sig = cls.__new__(cls)
    dict.__init__(sig, copy.deepcopy(dict(data)))
    sig._app = app
    return sig
