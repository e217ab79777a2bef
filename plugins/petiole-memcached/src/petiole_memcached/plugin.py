"""Hook implementations only: importing this module stays cheap and safe, so
pymemcache is imported by results.py when the factory first runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petiole import hookimpl


@hookimpl
def petiole_result_backends() -> Mapping[str, Any]:
    # Named by path: pymemcache is imported when the backend is first used.
    return {"memcached": "petiole_memcached.results:create_backend"}
