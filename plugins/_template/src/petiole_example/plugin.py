"""Hook implementations only: importing this module must stay cheap and safe,
so the client library is imported by transport.py, when the factory runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petiole import hookimpl


@hookimpl
def petiole_transports() -> Mapping[str, Any]:
    from petiole_example.transport import create_transport

    return {"example": create_transport}
