"""The eventlet pool: up to ``concurrency`` tasks at once, each in its own green thread.

The pool itself — time limits as timers around the task's call, revoke with
``terminate``, graceful and immediate stops — is the core's
:class:`petiole.pools.green.GreenPool`; this module gives it eventlet's calls
(through the typed :mod:`petiole_eventlet._eventlet`). The process must be
monkey-patched before anything was imported (see
:mod:`petiole_eventlet.patching`); :meth:`EventletPool.start` refuses otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from petiole.pools.green import GreenPool
from petiole_eventlet import _eventlet
from petiole_eventlet.patching import missing_patches


class _GreenThreads:
    """An eventlet ``GreenPool`` that never makes ``spawn`` wait: the core bounds the work."""

    def __init__(self) -> None:
        self._pool = _eventlet.green_pool()

    def spawn(self, function: Callable[..., None], /, *args: object) -> Any:
        return self._pool.spawn(function, *args)

    def join(self, timeout_s: float) -> bool:
        return _eventlet.wait_at_most(timeout_s, self._pool.waitall)

    def kill_all(self) -> None:
        for thread in list(self._pool.coroutines_running):
            thread.kill()


class Eventlet:
    """eventlet's side of :class:`petiole.pools.green.GreenLibrary`."""

    name = "eventlet"
    unit = "green thread"
    command = "petiole-eventlet"
    package = "petiole_eventlet"
    Timeout: type[BaseException] = _eventlet.Timeout

    def missing_patches(self) -> list[str]:
        return missing_patches()

    def start_timeout(
        self, seconds: float | None, exception: BaseException | None = None
    ) -> BaseException:
        return _eventlet.Timeout(seconds, exception)  # started when made

    def cancel_timeout(self, timeout: BaseException) -> None:
        assert isinstance(timeout, _eventlet.Timeout)
        timeout.cancel()

    def group(self) -> _GreenThreads:
        return _GreenThreads()

    def kill(self, handle: Any, exception: BaseException) -> None:
        # As an exc_info triple: how eventlet also raises it in one not yet started.
        handle.kill(type(exception), exception, None)

    def current(self) -> Any:
        return _eventlet.current()

    def is_dead(self, green_thread: Any) -> bool:
        return bool(green_thread.dead)

    def sleep(self, seconds: float) -> None:
        _eventlet.sleep(seconds)


class EventletPool(GreenPool):
    name = "eventlet"
    library = Eventlet()
