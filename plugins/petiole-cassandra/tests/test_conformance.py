"""The result backend and coordination conformance suites against a real Cassandra
node started by the tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_cassandra.results import CassandraBackend, create_backend

from petiole.backend import Coordination, ResultBackend
from petiole.testing import CoordinationSuite, ResultBackendSuite


class TestCassandraBackend(ResultBackendSuite):
    # Capabilities where Cassandra differs, each declared by the backend:
    # - push_wait=False: Cassandra has no notifications, so wait() polls with a
    #   backoff capped at wait_poll_max_s (0.5 s). The suite allows 1 s for a
    #   polling backend to notice a record (wait_precision_s, its default).
    # - max_result_bytes: a write over max_mutation_size (16 MiB by default) is
    #   refused, so the backend declares a limit just under it and the suite's
    #   over-the-limit test runs.
    #
    # TTLs are whole seconds, rounded up, and a cell expires on the server's
    # second boundary: allow a record up to 2 s past its 1 s ttl.
    ttl_precision_s = 2.0
    # Every set_add, incr and claim is a lightweight transaction (Paxos, four
    # round trips), and the concurrency tests run them all on one partition: the
    # suite's 8 threads x 50 contend hard on a 2-core machine, so give them time.
    concurrency_timeout_s = 120.0

    @pytest.fixture
    def backend(self, cassandra_url: str) -> Iterator[ResultBackend]:
        backend = create_backend(cassandra_url, {})
        yield backend
        backend.close()


class TestCassandraCoordination(CoordinationSuite):
    # Whole-second TTLs on the server's second boundary, and lightweight
    # transactions contending on one partition: see TestCassandraBackend.
    ttl_precision_s = 2.0
    concurrency_timeout_s = 120.0

    @pytest.fixture
    def coordination(self, cassandra_url: str) -> Iterator[Coordination]:
        store = CassandraBackend(cassandra_url, {})
        yield store
        store.close()

    @pytest.fixture
    def peer_coordination(self, cassandra_url: str) -> Iterator[Coordination]:
        store = CassandraBackend(cassandra_url, {})
        yield store
        store.close()
