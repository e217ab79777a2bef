"""Hook implementations only: importing this module must stay cheap and safe.
The factory is named as "module:attribute", so transport.py (and the client
library it imports) is imported only when the component is first used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petiole import hookimpl


@hookimpl
def petiole_transports() -> Mapping[str, Any]:
    return {"example": "petiole_example.transport:create_transport"}
