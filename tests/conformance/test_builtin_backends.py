"""The core's built-in result backends (memory, sqlite) against the backend and
coordination conformance suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole._builtins import memory, sqlite_backend
from petiole.backend import Coordination, ResultBackend
from petiole.testing import CoordinationSuite, ResultBackendSuite


def _coordination(backend: ResultBackend) -> Coordination:
    assert isinstance(backend, Coordination)
    return backend


class TestMemoryBackend(ResultBackendSuite):
    @pytest.fixture
    def backend(self) -> Iterator[ResultBackend]:
        backend = memory.create_backend("memory://", {})
        yield backend
        backend.close()


class TestMemoryCoordination(CoordinationSuite):
    @pytest.fixture
    def coordination(self) -> Iterator[Coordination]:
        store = _coordination(memory.create_backend("memory://", {}))
        yield store
        store.close()

    @pytest.fixture
    def peer_coordination(self) -> Iterator[Coordination]:
        store = _coordination(memory.create_backend("memory://", {}))
        yield store
        store.close()


class TestSqliteBackend(ResultBackendSuite):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[ResultBackend]:
        backend = sqlite_backend.create_backend(f"sqlite:///{tmp_path / 'results.db'}", {})
        yield backend
        backend.close()


class TestSqliteCoordination(CoordinationSuite):
    @pytest.fixture
    def coordination(self, tmp_path: Path) -> Iterator[Coordination]:
        store = _coordination(sqlite_backend.create_backend(f"sqlite:///{tmp_path / 'c.db'}", {}))
        yield store
        store.close()

    @pytest.fixture
    def peer_coordination(self, tmp_path: Path) -> Iterator[Coordination]:
        store = _coordination(sqlite_backend.create_backend(f"sqlite:///{tmp_path / 'c.db'}", {}))
        yield store
        store.close()
