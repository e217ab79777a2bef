"""Hook implementations only: importing this module stays cheap and safe.
The factory is named as "module:attribute", so pika is imported (by
transport.py, rpc.py) only when a RabbitMQ component is first used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petiole import hookimpl

SCHEMES = ("amqp", "amqps")
RPC_SCHEMES = ("rpc", "rpcs")


@hookimpl
def petiole_transports() -> Mapping[str, Any]:
    return dict.fromkeys(SCHEMES, "petiole_amqp.transport:create_transport")


@hookimpl
def petiole_result_backends() -> Mapping[str, Any]:
    return dict.fromkeys(RPC_SCHEMES, "petiole_amqp.rpc:create_backend")
