"""The worker's SIGTERM/SIGINT handlers under eventlet, run in a green thread of
their own (and installed, if the worker could not: an embedding that starts it
from elsewhere than the main green thread).

Python runs a signal handler in the main thread at the next bytecode, which
under eventlet is usually inside the hub. The worker's handler may block — a
second signal terminates the pool and returns messages to the broker — and a
blocking call in the hub fails, so the handler is started in a new green
thread instead.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import TYPE_CHECKING

from petiole_eventlet import _eventlet

if TYPE_CHECKING:
    from petiole.worker import Worker

#: Signal -> the handler Python starts with, which means nobody else installed one.
DEFAULTS = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}


def install_worker_handlers(worker: Worker) -> None:
    """Route SIGTERM and SIGINT to the worker's handler, in a new green thread each
    time. A handler someone else installed is left alone, and so is a worker not
    running in the main OS thread (where signals cannot be handled)."""

    def in_green_thread(signum: int, frame: FrameType | None) -> None:
        _eventlet.spawn_n(worker._on_signal, signum, frame)

    for signum, default in DEFAULTS.items():
        installed = signal.getsignal(signum)
        if installed is not default and getattr(installed, "__self__", None) is not worker:
            continue
        try:
            signal.signal(signum, in_green_thread)
        except ValueError:  # not the main OS thread
            return
