"""Hook implementations only: importing this module stays cheap and safe.
Factories are named as "module:attribute", so pymongo is imported (by
transport.py / results.py) only when a MongoDB component is first used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petiole import hookimpl

SCHEMES = ("mongodb", "mongodb+srv")


@hookimpl
def petiole_transports() -> Mapping[str, Any]:
    return dict.fromkeys(SCHEMES, "petiole_mongo.transport:create_transport")


@hookimpl
def petiole_result_backends() -> Mapping[str, Any]:
    return dict.fromkeys(SCHEMES, "petiole_mongo.results:create_backend")
