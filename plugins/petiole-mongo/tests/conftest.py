"""One MongoDB-wire server for the whole test session (tests use unique queue,
task and key names, so they share it): SecantusDB in-process, or a real mongod
named by PETIOLE_TEST_MONGODB_URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_mongo.testing import MongoServer


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    server = MongoServer(tmp_path_factory.mktemp("mongo")).start()
    yield server
    server.stop()
