"""The conformance suites against a MongoDB-wire server started by the tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_mongo.results import MongoBackend, create_backend
from petiole_mongo.testing import MongoServer
from petiole_mongo.transport import create_transport

from petiole.backend import Coordination, ResultBackend
from petiole.testing import CoordinationSuite, ResultBackendSuite, TransportSuite
from petiole.transport import Transport


class TestMongoTransport(TransportSuite):
    # SecantusDB scans a collection per operation (2-5 ms at 200 documents):
    # keep the concurrency tests to a hundred messages.
    concurrency_messages = 100
    concurrency_threads = 4

    @pytest.fixture
    def transport(self, mongo_server: MongoServer) -> Iterator[Transport]:
        transport = create_transport(mongo_server.url, {})
        yield transport
        transport.close()

    @pytest.fixture
    def peer_transport(self, mongo_server: MongoServer) -> Iterator[Transport]:
        transport = create_transport(mongo_server.url, {})
        yield transport
        transport.close()


class TestMongoBackend(ResultBackendSuite):
    # Reads filter on expires_at (milliseconds), so expiry is exact, whatever
    # the TTL sweeper's pace; waits are woken at once by a change stream or
    # by a store in this process.
    ttl_precision_s = 0.5
    wait_precision_s = 0.5
    # SecantusDB scans a collection per operation (see TestMongoTransport):
    # lighter concurrency tests, and a wait for 250 ids rather than 1,000.
    concurrency_threads = 4
    concurrency_per_thread = 25
    many_ids = 250

    @pytest.fixture
    def backend(self, mongo_server: MongoServer) -> Iterator[ResultBackend]:
        backend = create_backend(mongo_server.url, {})
        yield backend
        backend.close()


class TestMongoCoordination(CoordinationSuite):
    # Reads filter on expires_at: expiry is exact (see TestMongoBackend).
    ttl_precision_s = 0.5
    concurrency_threads = 4
    concurrency_per_thread = 25

    @pytest.fixture
    def coordination(self, mongo_server: MongoServer) -> Iterator[Coordination]:
        store = MongoBackend(mongo_server.url, {})
        yield store
        store.close()

    @pytest.fixture
    def peer_coordination(self, mongo_server: MongoServer) -> Iterator[Coordination]:
        store = MongoBackend(mongo_server.url, {})
        yield store
        store.close()
