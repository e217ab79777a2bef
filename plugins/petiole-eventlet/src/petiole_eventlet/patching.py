"""Monkey-patching for eventlet: the one step that must come before every import.

eventlet makes blocking calls cooperative by replacing the standard library's
blocking primitives (sockets, ``select``, ``time.sleep``, threads and locks)
with green ones. Objects created *before* the patch keep the originals: a
``threading.Lock`` made when some module was imported still blocks the whole
process when contended (a deadlock among green threads), and a thread started
before it is a real thread. So :func:`patch` must run before Petiole, the app
and its client libraries are imported. This module imports only the standard
library, and eventlet (through ``_eventlet``) inside its functions.
"""

from __future__ import annotations

import sys
import warnings

#: What the pool needs patched (eventlet's names): cooperative sockets, sleeps and
#: threads (the worker's consumer, lease keeper and control threads become green).
REQUIRED = ("socket", "select", "time", "thread")


def patch() -> None:
    """Monkey-patch the whole standard library for eventlet (``eventlet.monkey_patch()``).

    Call it first thing in the program's entry point. Calling it again is a
    no-op. Warns (``RuntimeWarning``) when Petiole was imported before it: the
    locks Petiole created at import time would not be cooperative.
    """
    from petiole_eventlet import _eventlet

    if not missing_patches():
        return
    if "petiole" in sys.modules:
        warnings.warn(
            "petiole was imported before eventlet monkey-patched the process; patch first "
            "(run `petiole-eventlet worker ...` or call petiole_eventlet.patch() before any "
            "import)",
            RuntimeWarning,
            stacklevel=2,
        )
    _eventlet.monkey_patch()


def missing_patches() -> list[str]:
    """The modules of :data:`REQUIRED` that eventlet has not patched in this process."""
    from petiole_eventlet import _eventlet

    return [name for name in REQUIRED if not _eventlet.is_monkey_patched(name)]
