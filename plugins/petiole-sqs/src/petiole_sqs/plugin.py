"""Hook implementations only: importing this module must stay cheap and safe.
The factory is named as "module:attribute", so boto3 is imported (by
transport.py) only when the SQS transport is first used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petiole import hookimpl


@hookimpl
def petiole_transports() -> Mapping[str, Any]:
    return {"sqs": "petiole_sqs.transport:create_transport"}
