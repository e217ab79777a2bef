"""One real Cassandra node for the whole test process (tests use unique keys and
task ids, so they share it; the end-to-end tests share it too, see
``petiole_cassandra.testing.shared_node``); tests that restart a node start their own."""

from __future__ import annotations

import pytest
from petiole_cassandra.testing import CassandraNode, shared_node


@pytest.fixture(scope="session")
def cassandra() -> CassandraNode:
    return shared_node()


@pytest.fixture(scope="session")
def cassandra_url(cassandra: CassandraNode) -> str:
    return cassandra.url("petiole_test")
