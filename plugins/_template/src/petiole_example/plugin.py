"""Hook implementations only: importing this module must stay cheap and safe,
because every app that has the plugin installed imports it.

Each component is named as ``"module:attribute"``, so its module (and the client
library that module imports) is imported only when an app first uses it, and
``petiole plugins`` lists the plugin without importing any of them.
"""

from __future__ import annotations

from collections.abc import Mapping

from petiole.plugin_api import BackendFactory, SerializerFactory, TransportFactory, hookimpl


@hookimpl
def petiole_transports() -> Mapping[str, str | TransportFactory]:
    return {"example": "petiole_example.transport:create_transport"}


@hookimpl
def petiole_result_backends() -> Mapping[str, str | BackendFactory]:
    return {"example": "petiole_example.results:create_backend"}


@hookimpl
def petiole_serializers() -> Mapping[str, str | SerializerFactory]:
    # A serializer is named by its class (or any callable returning one), built on first use.
    return {"example": "petiole_example.serializer:ExampleSerializer"}
