"""One example server for the whole test session: tests use unique queue names,
task ids and keys, so they share it (as the conformance suites expect)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_example.testing import ExampleServer


@pytest.fixture(scope="session")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleServer]:
    server = ExampleServer(tmp_path_factory.mktemp("example")).start()
    yield server
    server.stop()
