"""Monkey-patching for eventlet: the one step that must come before every import
(why: :mod:`petiole.pools.green`). So :func:`patch` must run before Petiole, the
app and its client libraries are imported. This module imports only the
standard library, and eventlet (through ``_eventlet``) inside its functions.
"""

from __future__ import annotations

import sys

#: What the pool needs patched (eventlet's names): cooperative sockets, sleeps and
#: threads (the worker's consumer, lease keeper and control threads become green).
REQUIRED = ("socket", "select", "time", "thread")


def patch() -> None:
    """Monkey-patch the whole standard library for eventlet (``eventlet.monkey_patch()``).

    Call it first thing in the program's entry point; again, it does nothing.
    Warns when Petiole was imported before it (see
    :func:`petiole.pools.green.warn_patched_late`).
    """
    from petiole_eventlet import _eventlet

    if not missing_patches():
        return
    if "petiole" in sys.modules:  # imported already: importing more of it costs nothing
        from petiole.pools.green import warn_patched_late

        warn_patched_late("eventlet")
    _eventlet.monkey_patch()


def missing_patches() -> list[str]:
    """The modules of :data:`REQUIRED` that eventlet has not patched in this process."""
    from petiole_eventlet import _eventlet

    return [name for name in REQUIRED if not _eventlet.is_monkey_patched(name)]
