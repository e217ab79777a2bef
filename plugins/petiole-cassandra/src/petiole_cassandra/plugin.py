"""Hook implementations only: importing this module stays cheap and safe, so
cassandra-driver is imported by results.py when the factory first runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petiole import hookimpl

SCHEMES = ("cassandra",)


@hookimpl
def petiole_result_backends() -> Mapping[str, Any]:
    # Named by path: cassandra-driver is imported when the backend is first used.
    return dict.fromkeys(SCHEMES, "petiole_cassandra.results:create_backend")
