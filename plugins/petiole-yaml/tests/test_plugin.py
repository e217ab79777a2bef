"""The plugin as an app sees it: found through its entry point, loaded lazily,
carrying tasks end to end through a worker on the in-process memory:// stores,
and refused, unread, by a worker that does not accept it (the kit's
SerializerPluginSuite)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from petiole.testing import SerializerPluginSuite

# Values JSON has no type for: each comes back equal and of the same type.
AWARE = dt.datetime(2024, 3, 4, 5, 6, 7, 890123, tzinfo=dt.timezone(dt.timedelta(hours=-7)))


class TestYamlPlugin(SerializerPluginSuite):
    plugin = "yaml"
    distribution = "petiole-yaml"
    package = "petiole_yaml"
    serializer_name = "yaml"
    content_type = "application/x-yaml"
    rich_values = (
        AWARE,
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        Decimal("12345.6789"),
        b"\x00\x01\xfe\xff",
        {1, 2, 3},
    )
