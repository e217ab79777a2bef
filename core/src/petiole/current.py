"""The current app: the one code without an app in hand sends through.

``shared_task`` tasks, ``signature("name")`` and canvas built from names ask
:func:`current_app`, which answers, in order:

1. the app of the innermost ``with use_app(app):`` block in this thread or
   asyncio task — a :mod:`contextvars` variable, so threads and tasks never see
   each other's (a new thread starts with none; an asyncio task starts with the
   one in effect where it was created);
2. else the process default: the app most recently created (``Petiole(...)``,
   unless created with ``set_as_current=False``), or the one given to
   :func:`set_default_app` — as Celery's default app.

With neither, it raises :class:`~petiole.errors.ConfigError`.

This module sits below the app (docs/contracts.md, "Module layers"): it takes
apps as :class:`TaskApp`, which :class:`petiole.app.Petiole` satisfies, and the
app calls :func:`app_created` from its constructor.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, cast, overload

from petiole import app_context
from petiole.errors import ConfigError, PetioleError
from petiole.producer import Producer
from petiole.result import AsyncResult

F = TypeVar("F", bound=Callable[..., Any])


class TaskApp(Producer, Protocol):
    """An app as the current app: it sends tasks and registers them."""

    @property
    def name(self) -> str: ...

    @property
    def tasks(self) -> Mapping[str, Any]: ...

    def task(self, fn: Any = None, **options: Any) -> Any: ...


_lock = threading.Lock()
# Every app created, so a shared task decorated later is registered on each; weak,
# so an app dropped (a test's) is not kept alive by it.
_apps: weakref.WeakSet[TaskApp] = weakref.WeakSet()
_shared: list[SharedTask] = []


def current_app() -> TaskApp:
    """The app in effect here (see the module's docstring); raises
    :class:`~petiole.errors.ConfigError` when no app exists."""
    return cast(TaskApp, app_context.required())


def default_app() -> TaskApp | None:
    """The process default, ignoring ``use_app`` blocks; None before any app."""
    return cast("TaskApp | None", app_context.default())


def set_default_app(app: TaskApp | None) -> None:
    """Make ``app`` the process default (None: no default), for every thread that
    is not inside a ``use_app`` block."""
    with _lock:
        app_context.set_default(app)


@contextmanager
def use_app(app: TaskApp) -> Iterator[TaskApp]:
    """Make ``app`` the current app inside the block, in this thread or asyncio
    task only; blocks nest, and the previous one is back on exit."""
    with app_context.overriding(app):
        yield app


def app_created(app: TaskApp, set_as_current: bool = True) -> None:
    """Called by ``Petiole.__init__`` once the app can register tasks: registers
    every shared task on it, and makes it the default unless ``set_as_current``
    is false."""
    with _lock:
        _apps.add(app)
        if set_as_current:
            app_context.set_default(app)
        shared = list(_shared)
    for task in shared:
        task.bind(app)


@overload
def shared_task(fn: F, **options: Any) -> SharedTask: ...


@overload
def shared_task(fn: None = None, **options: Any) -> Callable[[F], SharedTask]: ...


def shared_task(fn: Any = None, **options: Any) -> Any:
    """A task registered on every app, created before or after it (Celery's
    ``@shared_task``): ``@shared_task`` or ``@shared_task(name=..., bind=True, ...)``
    with the options of ``@app.task(...)``.

    For reusable code that must not import a project's app. The object returned
    sends through the current app (:func:`current_app`): ``add.delay(2, 3)``
    uses the app of the ``use_app`` block it runs in, else the default app.
    """

    def decorate(func: Callable[..., Any]) -> SharedTask:
        task = SharedTask(func, options)
        with _lock:
            _shared.append(task)
            apps = list(_apps)
        for app in apps:
            task.bind(app)
        return task

    return decorate(fn) if fn is not None else decorate


class SharedTask:
    """What ``@shared_task`` returns: the task of the current app for one function.

    ``delay``, ``apply_async`` and every other attribute of a task (``s``, ``si``,
    ``name``, ``map``, ``apply``...) are the current app's registered task's.
    Calling it runs the function here: through the current app's task, or, with
    no app yet and no ``bind``, the plain function (a unit test needs no app).
    """

    def __init__(self, fn: Callable[..., Any], options: Mapping[str, Any]) -> None:
        self.fn = fn
        self.options = dict(options)
        self._lock = threading.Lock()
        self._tasks: weakref.WeakKeyDictionary[TaskApp, Any] = weakref.WeakKeyDictionary()
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        name = self.options.get("name") or f"{self.fn.__module__}.{self.fn.__qualname__}"
        return f"<shared task {name!r}>"

    def bind(self, app: TaskApp) -> Any:
        """Register the function on ``app`` (once) and return the app's task."""
        with self._lock:
            task = self._tasks.get(app)
            if task is None:
                try:
                    task = app.task(self.fn, **self.options)
                except PetioleError as exc:
                    raise ConfigError(f"shared task {self!r} on app {app.name!r}: {exc}") from exc
                self._tasks[app] = task
            return task

    def task_of(self, app: TaskApp | None = None) -> Any:
        """The registered task this stands for on ``app`` (default: the current app)."""
        return self.bind(app if app is not None else current_app())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy and pickle probe these before __init__ ran
            raise AttributeError(name)
        return getattr(self.task_of(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if app_context.in_effect() is None and not self.options.get("bind"):
            return self.fn(*args, **kwargs)
        return self.task_of()(*args, **kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """Send the task through the current app (see :meth:`apply_async`)."""
        result: AsyncResult = self.task_of().delay(*args, **kwargs)
        return result

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send the task through the current app, with ``Task.apply_async``'s options."""
        result: AsyncResult = self.task_of().apply_async(args, kwargs, **options)
        return result
