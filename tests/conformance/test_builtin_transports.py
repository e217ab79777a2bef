"""The core's built-in transports (memory, sqlite) against the transport conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole._builtins import memory, sqlite_transport
from petiole.testing import TransportSuite
from petiole.transport import Transport


class TestMemoryTransport(TransportSuite):
    @pytest.fixture
    def transport(self) -> Iterator[Transport]:
        transport = memory.create_transport("memory://", {})
        yield transport
        transport.close()

    @pytest.fixture
    def peer_transport(self) -> Iterator[Transport]:
        transport = memory.create_transport("memory://", {})
        yield transport
        transport.close()


class TestSqliteTransport(TransportSuite):
    @pytest.fixture
    def transport(self, tmp_path: Path) -> Iterator[Transport]:
        transport = sqlite_transport.create_transport(f"sqlite:///{tmp_path / 'broker.db'}", {})
        yield transport
        transport.close()

    @pytest.fixture
    def peer_transport(self, tmp_path: Path) -> Iterator[Transport]:
        # A second transport on the same file: its own connections, as another
        # worker process would have (only the in-process wake-up is shared).
        transport = sqlite_transport.create_transport(f"sqlite:///{tmp_path / 'broker.db'}", {})
        yield transport
        transport.close()
