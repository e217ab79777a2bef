"""The worker's SIGTERM/SIGINT handlers, run in a greenlet of their own.

Python runs a signal handler in the main thread at the next bytecode, which
under gevent is usually inside the event loop (the hub). The worker's handler
may block — a second signal terminates the pool and returns messages to the
broker — and a blocking call in the hub fails (``BlockingSwitchOutError``), so
the worker would crash instead of stopping at once. ``gevent.signal_handler``
runs the same handler in a new greenlet instead.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import gevent

if TYPE_CHECKING:
    from petiole.worker import Worker

HANDLED = (signal.SIGTERM, signal.SIGINT)


def run_worker_handlers_in_greenlets(worker: Worker) -> None:
    """Move the handlers ``worker.run()`` installed into greenlets; others are left alone."""
    for signum in HANDLED:
        handler = signal.getsignal(signum)
        if callable(handler) and getattr(handler, "__self__", None) is worker:
            gevent.signal_handler(signum, handler, signum, None)
