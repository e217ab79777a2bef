"""The conformance kit: reusable pytest suites for transports, result backends,
coordination stores, serializers, codecs and signers.

A plugin's tests subclass a suite and provide its fixture (``transport`` — for
the transport, broadcast and consume suites —
``backend``, ``coordination``, ``serializer``, ``codec`` or ``signer``; the
serializer plugin suite takes class attributes instead); see
docs/conformance.md. The suite classes are not collected on their own (their
names do not start with ``Test``).
"""

from __future__ import annotations

from petiole.testing._helpers import unique_name, wait_until
from petiole.testing.backend_suite import ResultBackendSuite
from petiole.testing.broadcast_suite import BroadcastSuite
from petiole.testing.codec_suite import CodecSuite
from petiole.testing.consume_suite import ConsumeSuite
from petiole.testing.coordination_suite import CoordinationSuite
from petiole.testing.plugin_checks import TESTS_MAY_IMPORT, core_imports_beyond
from petiole.testing.serializer_plugin_suite import SerializerPluginSuite
from petiole.testing.serializer_suite import (
    JSON_TAGGED_ROUNDTRIPS,
    PLAIN_ROUNDTRIPS,
    RoundTrip,
    SerializerSuite,
)
from petiole.testing.signer_suite import SignerSuite
from petiole.testing.transport_suite import TransportSuite

__all__ = [
    "JSON_TAGGED_ROUNDTRIPS",
    "PLAIN_ROUNDTRIPS",
    "TESTS_MAY_IMPORT",
    "BroadcastSuite",
    "CodecSuite",
    "ConsumeSuite",
    "CoordinationSuite",
    "ResultBackendSuite",
    "RoundTrip",
    "SerializerPluginSuite",
    "SerializerSuite",
    "SignerSuite",
    "TransportSuite",
    "core_imports_beyond",
    "unique_name",
    "wait_until",
]
