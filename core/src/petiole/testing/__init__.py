"""The conformance kit: reusable pytest suites for transports, result backends
and serializers.

A plugin's tests subclass a suite and provide one fixture (``transport``,
``backend`` or ``serializer``); see docs/conformance.md. The suite classes are
not collected on their own (their names do not start with ``Test``).
"""

from __future__ import annotations

from petiole.testing._helpers import unique_name, wait_until
from petiole.testing.backend_suite import ResultBackendSuite
from petiole.testing.broadcast_suite import BroadcastSuite
from petiole.testing.serializer_suite import (
    JSON_TAGGED_ROUNDTRIPS,
    PLAIN_ROUNDTRIPS,
    RoundTrip,
    SerializerSuite,
)
from petiole.testing.transport_suite import TransportSuite

__all__ = [
    "JSON_TAGGED_ROUNDTRIPS",
    "PLAIN_ROUNDTRIPS",
    "BroadcastSuite",
    "ResultBackendSuite",
    "RoundTrip",
    "SerializerSuite",
    "TransportSuite",
    "unique_name",
    "wait_until",
]
