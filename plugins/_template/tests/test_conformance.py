"""The transport conformance suite against a real example broker.

Real servers only: start one in a fixture (a subprocess on 127.0.0.1, a free
port, data in tmp_path) and stop it after. With CI=true a missing server is a
failure, elsewhere a skip that says what to install.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_example.transport import ExampleTransport

from petiole.testing import TransportSuite
from petiole.transport import Transport


class TestExampleTransport(TransportSuite):
    @pytest.fixture
    def transport(self) -> Iterator[Transport]:
        transport = ExampleTransport("example://127.0.0.1:1234", {})
        yield transport
        transport.close()
