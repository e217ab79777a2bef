"""Hook implementations only: every app imports this module, so it imports nothing
but the plugin API; the serializer's module is imported when an app first uses it."""

from __future__ import annotations

from collections.abc import Mapping

from petiole.plugin_api import SerializerFactory, hookimpl


@hookimpl
def petiole_serializers() -> Mapping[str, str | SerializerFactory]:
    return {"json-sorted": "petiole_example_serializer.serializer:SortedJsonSerializer"}
