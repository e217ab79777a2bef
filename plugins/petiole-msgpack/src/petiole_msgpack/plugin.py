"""Hook implementations only: importing this module stays cheap and safe, so
msgpack is imported by serializer.py when an app first needs the serializer."""

from __future__ import annotations

from collections.abc import Mapping

from petiole.plugin_api import SerializerFactory, hookimpl


@hookimpl
def petiole_serializers() -> Mapping[str, str | SerializerFactory]:
    # Named by path: built on first use, by name or by content type.
    return {"msgpack": "petiole_msgpack.serializer:MsgpackSerializer"}
