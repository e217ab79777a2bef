"""Hook implementations only: importing this module stays cheap and safe.
The factory is named as "module:attribute", so pika is imported (by
transport.py) only when the RabbitMQ transport is first used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petiole import hookimpl

SCHEMES = ("amqp", "amqps")


@hookimpl
def petiole_transports() -> Mapping[str, Any]:
    return dict.fromkeys(SCHEMES, "petiole_amqp.transport:create_transport")
