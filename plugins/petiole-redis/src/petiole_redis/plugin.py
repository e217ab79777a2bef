"""Hook implementations only: importing this module stays cheap and safe, so
redis-py is imported by transport.py / results.py when a factory first runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petiole import hookimpl

SCHEMES = ("redis", "rediss", "unix")


@hookimpl
def petiole_transports() -> Mapping[str, Any]:
    from petiole_redis.transport import create_transport

    return dict.fromkeys(SCHEMES, create_transport)


@hookimpl
def petiole_result_backends() -> Mapping[str, Any]:
    from petiole_redis.results import create_backend

    return dict.fromkeys(SCHEMES, create_backend)
