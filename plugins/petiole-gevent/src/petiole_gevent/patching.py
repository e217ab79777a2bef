"""Monkey-patching for gevent: the one step that must come before every import.

gevent makes blocking calls cooperative by replacing the standard library's
blocking primitives (sockets, ``select``, ``time.sleep``, threads and locks)
with its own. Objects created *before* the patch keep the originals: a
``threading.Lock`` made when some module was imported still blocks the whole
process when contended (a deadlock among greenlets), and a thread started
before it is a real thread. So :func:`patch` must run before Petiole, the app
and its client libraries are imported. This module imports only the standard
library, and gevent inside :func:`patch`.
"""

from __future__ import annotations

import sys
import warnings

#: What the pool needs patched: cooperative sockets, sleeps and threads (the
#: worker's consumer, lease keeper and control threads become greenlets).
REQUIRED = ("socket", "select", "time", "threading")


def patch() -> None:
    """Monkey-patch the whole standard library for gevent (``patch_all``).

    Call it first thing in the program's entry point. Calling it again is a
    no-op. Warns (``RuntimeWarning``) when Petiole was imported before it: the
    locks Petiole created at import time would not be cooperative.
    """
    from gevent import monkey

    if not missing_patches():
        return
    if "petiole" in sys.modules:
        warnings.warn(
            "petiole was imported before gevent monkey-patched the process; patch first "
            "(run `petiole-gevent worker ...` or call petiole_gevent.patch() before any import)",
            RuntimeWarning,
            stacklevel=2,
        )
    monkey.patch_all()


def missing_patches() -> list[str]:
    """The modules of :data:`REQUIRED` that gevent has not patched in this process."""
    from gevent import monkey

    return [name for name in REQUIRED if not monkey.is_module_patched(name)]
