"""Monkey-patching for gevent: the one step that must come before every import
(why: :mod:`petiole.pools.green`). So :func:`patch` must run before Petiole, the
app and its client libraries are imported. This module imports only the
standard library, and gevent inside :func:`patch`.
"""

from __future__ import annotations

import sys

#: What the pool needs patched: cooperative sockets, sleeps and threads (the
#: worker's consumer, lease keeper and control threads become greenlets).
REQUIRED = ("socket", "select", "time", "threading")


def patch() -> None:
    """Monkey-patch the whole standard library for gevent (``patch_all``).

    Call it first thing in the program's entry point; again, it does nothing.
    Warns when Petiole was imported before it (see
    :func:`petiole.pools.green.warn_patched_late`).
    """
    from gevent import monkey

    if not missing_patches():
        return
    if "petiole" in sys.modules:  # imported already: importing more of it costs nothing
        from petiole.pools.green import warn_patched_late

        warn_patched_late("gevent")
    monkey.patch_all()


def missing_patches() -> list[str]:
    """The modules of :data:`REQUIRED` that gevent has not patched in this process."""
    from gevent import monkey

    return [name for name in REQUIRED if not monkey.is_module_patched(name)]
