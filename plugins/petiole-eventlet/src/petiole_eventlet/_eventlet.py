"""The few eventlet calls this plugin makes, with types.

eventlet ships neither a ``py.typed`` marker nor stubs, so to mypy everything
it exports is ``Any``. The plugin goes through this module instead, which
declares the part of eventlet's API it relies on; the one untyped import is
below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

import eventlet  # type: ignore[import-untyped]  # ships no type information

#: GreenPool's size when the caller bounds the work itself.
_UNBOUNDED = 2**31 - 1

if TYPE_CHECKING:

    class Timeout(BaseException):
        """``eventlet.Timeout``: ``seconds`` after it is made (at once started), raises
        ``exception``, else itself, in the green thread that made it. ``None``
        seconds never fires. ``cancel()`` it when the guarded code is done."""

        def __init__(
            self, seconds: float | None = None, exception: BaseException | None = None
        ) -> None: ...

        def cancel(self) -> None: ...

else:
    Timeout = eventlet.Timeout


class Greenlet(Protocol):
    @property
    def dead(self) -> bool: ...


class GreenThread(Protocol):
    def kill(self, *exc_info: object) -> None:
        """Raise an exception in the green thread now: given as ``(type, value,
        traceback)``, else ``GreenletExit``. The caller yields to it, so it has
        handled it when this returns."""
        ...


class GreenPool(Protocol):
    #: The green threads it started that have not ended.
    coroutines_running: set[GreenThread]

    def spawn(self, function: Callable[..., None], /, *args: object) -> GreenThread: ...

    def waitall(self) -> None: ...


def green_pool() -> GreenPool:
    """A pool of green threads that never makes ``spawn`` wait for a free slot."""
    return cast(GreenPool, eventlet.greenpool.GreenPool(_UNBOUNDED))


def wait_at_most(seconds: float, waiting: Callable[[], None]) -> bool:
    """Call ``waiting()``, giving up after ``seconds``; whether it returned."""
    timeout = Timeout(seconds)
    try:
        waiting()
    except Timeout as exc:
        if exc is not timeout:
            raise
        return False
    finally:
        timeout.cancel()
    return True


def monkey_patch() -> None:
    """``eventlet.monkey_patch()``: every module it can patch; a no-op when repeated."""
    eventlet.monkey_patch()


def is_monkey_patched(module: str) -> bool:
    """Whether eventlet patched this module (by its eventlet name: ``thread``, ``socket``...)."""
    return bool(eventlet.patcher.is_monkey_patched(module))


def spawn_n(function: Callable[..., None], /, *args: object) -> None:
    """Run ``function(*args)`` in a new green thread, soon; safe to call from the hub."""
    eventlet.spawn_n(function, *args)


def sleep(seconds: float) -> None:
    """Let other green threads run for ``seconds``."""
    eventlet.sleep(seconds)


def current() -> Greenlet:
    """The green thread (greenlet) running this code."""
    return cast(Greenlet, eventlet.getcurrent())
