"""Hook implementations only: importing this module must stay cheap and safe,
so boto3 is imported by transport.py, when the factory first runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petiole import hookimpl


@hookimpl
def petiole_transports() -> Mapping[str, Any]:
    from petiole_sqs.transport import create_transport

    return {"sqs": create_transport}
