"""A gevent pool for Petiole: ``-P gevent`` runs up to ``-c`` tasks as greenlets.

Importing this package imports nothing else (not even gevent), so that
``python -m petiole_gevent`` can monkey-patch the process before anything is
imported; see :mod:`petiole_gevent.patching`.
"""

from petiole_gevent.patching import patch

__all__ = ["patch"]
