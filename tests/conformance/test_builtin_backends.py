"""The core's built-in result backends (memory, sqlite) against the backend conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole._builtins import memory, sqlite_backend
from petiole.backend import ResultBackend
from petiole.testing import ResultBackendSuite


class TestMemoryBackend(ResultBackendSuite):
    @pytest.fixture
    def backend(self) -> Iterator[ResultBackend]:
        backend = memory.create_backend("memory://", {})
        yield backend
        backend.close()


class TestSqliteBackend(ResultBackendSuite):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[ResultBackend]:
        backend = sqlite_backend.create_backend(f"sqlite:///{tmp_path / 'results.db'}", {})
        yield backend
        backend.close()
