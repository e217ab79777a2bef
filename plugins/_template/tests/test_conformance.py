"""The transport, result backend and serializer conformance suites, against the
example server the tests start (see conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_example.results import create_backend
from petiole_example.serializer import ExampleSerializer
from petiole_example.testing import ExampleServer
from petiole_example.transport import create_transport

from petiole.plugin_api import (
    Coordination,
    CoordinationSuite,
    ResultBackend,
    ResultBackendSuite,
    RoundTrip,
    Serializer,
    SerializerSuite,
    Transport,
    TransportSuite,
)


class TestExampleTransport(TransportSuite):
    # The suite's timing defaults suit a broker with precise timers; tune them for
    # yours (delay_precision_s, reserve_wait_s, ...: docs/conformance.md).

    @pytest.fixture
    def transport(self, example_server: ExampleServer) -> Iterator[Transport]:
        transport = create_transport(example_server.url, {})
        yield transport
        transport.close()

    @pytest.fixture
    def peer_transport(self, example_server: ExampleServer) -> Iterator[Transport]:
        """A second connection to the same server, standing in for another worker."""
        transport = create_transport(example_server.url, {})
        yield transport
        transport.close()


class TestExampleBackend(ResultBackendSuite):
    @pytest.fixture
    def backend(self, example_server: ExampleServer) -> Iterator[ResultBackend]:
        backend = create_backend(example_server.url, {})
        yield backend
        backend.close()


class TestExampleCoordination(CoordinationSuite):
    ttl_precision_s = 0.5

    @pytest.fixture
    def coordination(self, example_server: ExampleServer) -> Iterator[Coordination]:
        backend = create_backend(example_server.url, {})
        assert isinstance(backend, Coordination)
        yield backend
        backend.close()

    @pytest.fixture
    def peer_coordination(self, example_server: ExampleServer) -> Iterator[Coordination]:
        backend = create_backend(example_server.url, {})
        assert isinstance(backend, Coordination)
        yield backend
        backend.close()


class TestExampleSerializer(SerializerSuite):
    extra_roundtrip_values = (RoundTrip("tuple-as-list", (1, "a", None), expected=[1, "a", None]),)

    @pytest.fixture
    def serializer(self) -> Serializer:
        return ExampleSerializer()
