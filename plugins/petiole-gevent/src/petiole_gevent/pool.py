"""The gevent pool: up to ``concurrency`` tasks at once, each in its own greenlet.

The pool itself — time limits as timers around the task's call, revoke with
``terminate``, graceful and immediate stops — is the core's
:class:`petiole.pools.green.GreenPool`; this module gives it gevent's calls.
The process must be monkey-patched before anything was imported (see
:mod:`petiole_gevent.patching`); :meth:`GeventPool.start` refuses otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from gevent.pool import Group

from petiole.pools.green import GreenPool
from petiole_gevent.patching import missing_patches

_KILL_WAIT_S = 1.0


class _Greenlets:
    """A gevent ``Group``, not a bounded gevent ``Pool``: the core bounds the work."""

    def __init__(self) -> None:
        self._group = Group()

    def spawn(self, function: Callable[..., None], /, *args: object) -> Any:
        return self._group.spawn(function, *args)

    def join(self, timeout_s: float) -> bool:
        return bool(self._group.join(timeout=timeout_s))

    def kill_all(self) -> None:
        self._group.kill(block=True, timeout=_KILL_WAIT_S)


class Gevent:
    """gevent's side of :class:`petiole.pools.green.GreenLibrary`."""

    name = "gevent"
    unit = "greenlet"
    command = "petiole-gevent"
    package = "petiole_gevent"
    Timeout: type[BaseException] = gevent.Timeout

    def missing_patches(self) -> list[str]:
        return missing_patches()

    def start_timeout(
        self, seconds: float | None, exception: BaseException | None = None
    ) -> BaseException:
        timeout = gevent.Timeout(seconds, exception)
        timeout.start()
        return timeout

    def cancel_timeout(self, timeout: BaseException) -> None:
        assert isinstance(timeout, gevent.Timeout)
        timeout.close()

    def group(self) -> _Greenlets:
        return _Greenlets()

    def kill(self, handle: Any, exception: BaseException) -> None:
        handle.kill(exception, block=False)

    def current(self) -> Any:
        return gevent.getcurrent()

    def is_dead(self, green_thread: Any) -> bool:
        return bool(green_thread.dead)

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)


class GeventPool(GreenPool):
    name = "gevent"
    library = Gevent()
