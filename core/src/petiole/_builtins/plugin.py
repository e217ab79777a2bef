"""The core's own components, registered through the same hooks as any plugin's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from petiole.hookspecs import hookimpl
from petiole.serializers import JsonSerializer, PickleSerializer, Serializer


@hookimpl
def petiole_transports() -> Mapping[str, Any]:
    from petiole._builtins import memory, sqlite_transport

    return {"sqlite": sqlite_transport.create_transport, "memory": memory.create_transport}


@hookimpl
def petiole_result_backends() -> Mapping[str, Any]:
    from petiole._builtins import memory, sqlite_backend

    return {"sqlite": sqlite_backend.create_backend, "memory": memory.create_backend}


@hookimpl
def petiole_serializers() -> Sequence[Serializer]:
    return [JsonSerializer(), PickleSerializer()]


@hookimpl
def petiole_pools() -> Mapping[str, Any]:
    from petiole.pools import asyncio_pool, processes, solo, threads

    return {
        "solo": solo.SoloPool,
        "threads": threads.ThreadPool,
        "processes": processes.ProcessPool,
        "asyncio": asyncio_pool.AsyncioPool,
    }
