"""Hook implementations only: importing this module stays cheap and safe.
Factories are named as "module:attribute", so the client (transport.py /
results.py and what they import) is loaded only when a Redis component is first used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petiole import hookimpl

SCHEMES = ("redis", "rediss", "unix")


@hookimpl
def petiole_transports() -> Mapping[str, Any]:
    return dict.fromkeys(SCHEMES, "petiole_redis.transport:create_transport")


@hookimpl
def petiole_result_backends() -> Mapping[str, Any]:
    return dict.fromkeys(SCHEMES, "petiole_redis.results:create_backend")
