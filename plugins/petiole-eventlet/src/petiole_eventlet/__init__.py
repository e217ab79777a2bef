"""An eventlet pool for Petiole: ``-P eventlet`` runs up to ``-c`` tasks as green threads.

eventlet is in maintenance mode upstream; for new code prefer ``petiole-gevent``
or the core's ``asyncio`` pool. Importing this package imports nothing else
(not even eventlet), so that ``python -m petiole_eventlet`` can monkey-patch
the process before anything is imported; see :mod:`petiole_eventlet.patching`.
"""

from petiole_eventlet.patching import patch

__all__ = ["patch"]
