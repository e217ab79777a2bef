"""Hook implementations only: importing this module must stay cheap and safe,
because every app that has the plugin installed imports it.

The codec is named as ``"module:attribute"``, so :mod:`petiole_zstd.codec` (and
the zstandard library it imports) is imported only when an app first sends or
receives a ``zstd`` body, and ``petiole plugins`` lists the plugin without it.
"""

from __future__ import annotations

from collections.abc import Mapping

from petiole.plugin_api import CodecFactory, hookimpl


@hookimpl
def petiole_codecs() -> Mapping[str, str | CodecFactory]:
    # The class is the factory: built on first use, with its default level.
    return {"zstd": "petiole_zstd.codec:ZstdCodec"}
