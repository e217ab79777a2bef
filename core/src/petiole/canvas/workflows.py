"""Workflows: chain, group and chord, built from signatures.

The continuation travels in the messages, not in a coordinator: a chain's
remaining steps ride in the ``chain`` header of the running step; a chord's
member carries the ``chord`` header (group id, size, callback) and the member
that completes the group — counted with the result backend's atomic
``set_add`` and confirmed with ``claim`` — sends the callback, exactly once.
Ids are assigned up front (:meth:`Signature.freeze`), so every result handle
exists before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from petiole import coordination
from petiole.canvas.signature import Signature, freeze_callbacks, from_dict
from petiole.errors import ConfigError
from petiole.ids import new_id
from petiole.producer import Producer
from petiole.result import AsyncResult, GroupResult
from petiole.transport import publishing_in_batches


def _app_of(tasks: Sequence[Signature], app: Producer | None) -> Producer | None:
    if app is not None:
        return app
    return next((t._app for t in tasks if t._app is not None), None)


def _signatures(tasks: Iterable[Any], app: Producer | None) -> list[Signature]:
    out = []
    for task in tasks:
        if not isinstance(task, Mapping):
            raise ConfigError(f"workflows are made of signatures (task.s(...)), not {task!r}")
        out.append(task if isinstance(task, Signature) else from_dict(task, app))
    return out


class chain(Signature):  # noqa: N801 - Celery's spelling
    """``chain(a.s(), b.s(), c.s())`` or ``a.s() | b.s() | c.s()``: each step gets
    the previous step's result as its first argument. Its result is the last step's."""

    subtask_type = "chain"

    def __init__(self, *tasks: Any, app: Producer | None = None, **options: Any) -> None:
        steps: list[Signature] = []
        for task in _signatures(
            tasks[0] if len(tasks) == 1 and isinstance(tasks[0], list) else tasks, app
        ):
            steps.extend(task.tasks if isinstance(task, chain) else [task])
        if not steps:
            raise ConfigError("a chain needs at least one signature")
        super().__init__(
            "petiole.chain",
            (),
            {"tasks": [dict(s) for s in steps]},
            options,
            app=_app_of(steps, app),
        )

    @property
    def tasks(self) -> list[Signature]:
        return [from_dict(t, self._app) for t in self["kwargs"]["tasks"]]

    def _set_tasks(self, steps: list[Signature]) -> None:
        self["kwargs"]["tasks"] = [dict(s) for s in steps]

    def __or__(self, other: Signature) -> chain:  # type: ignore[override]
        return chain(*self.tasks, other, app=self._app)

    def freeze(self) -> AsyncResult | GroupResult:  # type: ignore[override]
        """Give every step its id now; the result is the last step's own: a group's
        :class:`GroupResult` when the chain ends in a group, as in Celery."""
        steps = self.tasks
        frozen = [step.freeze() for step in steps]
        self._set_tasks(steps)
        return frozen[-1]

    def last_id(self) -> str:
        self.freeze()
        return self.tasks[-1].last_id()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``chain(...)()``: send it (Celery's spelling of :meth:`apply_async`), ``args``
        going to the first step."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Any:
        freeze_callbacks(options)
        options = {**self.options, **options}
        result = self.freeze()
        steps = self.tasks
        if self.app.settings.eager:
            outcome = steps[0].apply_async(args, kwargs)
            for step in steps[1:]:
                outcome = step.apply_async((outcome.get(),))
            return outcome
        # Options that concern the chain's end (its result) go to its last step;
        # error callbacks go to every step, so whichever fails calls them.
        errbacks = options.pop("link_error", None)
        tail = {
            k: options.pop(k) for k in ("link", "chord", "group_id", "group_index") if k in options
        }
        if errbacks:
            steps = [s.clone(link_error=_merged(s, "link_error", errbacks)) for s in steps]
        if tail:
            steps[-1] = steps[-1].clone(**tail)
        first, rest = steps[0], steps[1:]
        if rest and isinstance(first, group):
            # A group followed by more steps: they run once every member is done.
            first, rest = chord(first, chain(*rest, app=self._app), app=self._app), []
        elif rest and isinstance(first, chord):
            first, rest = first.with_body(chain(first.body, *rest, app=self._app)), []
        if rest:
            options["chain"] = [dict(s) for s in rest]
        first.apply_async(args, kwargs, **options)
        return result


def _merged(sig: Signature, option: str, extra: Any) -> list[Any]:
    existing = sig["options"].get(option) or []
    added = extra if isinstance(extra, list) else [extra]
    return [*existing, *(dict(s) for s in added)]


class group(Signature):  # noqa: N801 - Celery's spelling
    """``group(add.s(1, 1), add.s(2, 2))``: run the signatures in parallel; the
    result is a :class:`~petiole.result.GroupResult` of theirs, in order."""

    subtask_type = "group"

    def __init__(self, *tasks: Any, app: Producer | None = None, **options: Any) -> None:
        members = _signatures(
            tasks[0] if len(tasks) == 1 and not isinstance(tasks[0], Mapping) else tasks, app
        )
        super().__init__(
            "petiole.group",
            (),
            {"tasks": [dict(m) for m in members]},
            options,
            app=_app_of(members, app),
        )

    @property
    def tasks(self) -> list[Signature]:
        return [from_dict(t, self._app) for t in self["kwargs"]["tasks"]]

    def freeze(self) -> GroupResult:  # type: ignore[override]
        group_id = str(self["options"].setdefault("task_id", new_id()))
        members = self.tasks
        ids = [member.last_id() for member in members]
        self["kwargs"]["tasks"] = [dict(m) for m in members]
        return GroupResult(group_id, [self.app.AsyncResult(i) for i in ids], self.app)

    def __call__(self, *args: Any, **options: Any) -> GroupResult:
        """``group(...)()``: send it (Celery's spelling of :meth:`apply_async`),
        ``args`` going to every member."""
        return self.apply_async(args, **options)

    def apply_async(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> GroupResult:
        options = {**self.options, **options}
        options.pop("task_id", None)
        result = self.freeze()
        if self.app.settings.eager:
            values = [m.apply_async(args, kwargs, **options) for m in self.tasks]
            return GroupResult(result.id, values, self.app)
        result.save()
        chord_info = options.pop("chord", None)
        # The members go out together: a transport that confirms in batches waits
        # once for all of them, not once per member.
        with publishing_in_batches(self.app.transport):
            for index, member in enumerate(self.tasks):
                extra: dict[str, Any] = {"group_id": result.id, "group_index": index}
                if chord_info is not None:
                    extra["chord"] = chord_info
                member.apply_async(args, kwargs, **options, **extra)
        return result


class chord(Signature):  # noqa: N801 - Celery's spelling
    """``chord(group_of_tasks, callback)``: run the header in parallel, then the
    callback with the list of their results, once, when the last one finished.
    Its result is the callback's."""

    subtask_type = "chord"

    def __init__(
        self,
        header: Any,
        body: Signature | None = None,
        *,
        app: Producer | None = None,
        **options: Any,
    ) -> None:
        head = header if isinstance(header, group) else group(*_signatures(header, app), app=app)
        members = head.tasks
        bound = _app_of([*members, *([body] if body is not None else [])], app)
        super().__init__(
            "petiole.chord",
            (),
            {"header": dict(head), "body": dict(body) if body is not None else None},
            options,
            app=bound,
        )

    def __call__(
        self, body: Signature | None = None, *args: Any, **options: Any
    ) -> AsyncResult | GroupResult:
        """``chord(header)(callback)``: send it with this callback; ``chord(header,
        callback)()``: send it (Celery's spelling of :meth:`apply_async`)."""
        chosen = self if body is None else self.with_body(body)
        result: AsyncResult | GroupResult = chosen.apply_async(args, **options)
        return result

    @property
    def header(self) -> group:
        found = from_dict(self["kwargs"]["header"], self._app)
        assert isinstance(found, group)
        return found

    @property
    def body(self) -> Signature:
        if self["kwargs"]["body"] is None:
            raise ConfigError("this chord has no callback: chord(header, callback)")
        return from_dict(self["kwargs"]["body"], self._app)

    def with_body(self, body: Signature) -> chord:
        twin = from_dict(dict(self), self._app)
        twin["kwargs"]["body"] = dict(body)
        assert isinstance(twin, chord)
        return twin

    def freeze(self) -> AsyncResult | GroupResult:  # type: ignore[override]
        """Give the header and the body their ids now; the result is the body's own
        (a :class:`GroupResult` when the body is a group)."""
        header, body = self.header, self.body
        header.freeze()
        frozen = body.freeze()
        self["kwargs"]["header"], self["kwargs"]["body"] = dict(header), dict(body)
        return frozen

    def last_id(self) -> str:
        return self.body.last_id()

    def apply_async(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> AsyncResult | GroupResult:
        options = {**self.options, **options}
        result = self.freeze()
        header, body = self.header, self.body
        # What concerns the chord's result (callbacks, an outer chord) is its body's.
        body_options = {
            k: options.pop(k)
            for k in ("link", "link_error", "chord", "group_id", "group_index")
            if k in options
        }
        if body_options:
            body = body.clone(**body_options)
        if self.app.settings.eager:
            values = [r.get() for r in header.apply_async(args, kwargs).results]
            return body.apply_async((values,))  # type: ignore[no-any-return]
        if not header.tasks:
            body.apply_async(([],))
            return result
        # Fail now, naming the setting, not when the last member finishes: the
        # members are counted in the coordination store.
        coordination.required(lambda: self.app.coordination, coordination.CHORD)
        chord_info = {"id": header.freeze().id, "size": len(header.tasks), "body": dict(body)}
        header.apply_async(args, kwargs, chord=chord_info, **options)
        return result


def map_signature(task_name: str, items: Iterable[Any], app: Producer, *, star: bool) -> Signature:
    """One message that runs ``task`` on each item in turn (``task.map`` / ``task.starmap``)."""
    builtin = "petiole.starmap" if star else "petiole.map"
    return Signature(
        builtin, (task_name, [list(i) if star else i for i in items]), immutable=True, app=app
    )


def chunks_group(task_name: str, items: Iterable[Any], size: int, app: Producer) -> group:
    """``task.chunks(items, n)``: a group of starmaps over ``n`` items each."""
    if size < 1:
        raise ConfigError(f"chunk size must be at least 1, got {size}")
    items = [list(i) for i in items]
    parts = [items[i : i + size] for i in range(0, len(items), size)]
    return group(*(map_signature(task_name, part, app, star=True) for part in parts), app=app)
