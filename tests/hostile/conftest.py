"""Hostile-input regression tests: every probe runs on the embedded SQLite
stores and on a real redis-server (the ``stores`` fixture is parametrized).

The tests import hostile_kit.py and hostile_app.py from this folder, and the
worker-process harness from tests/e2e. The number of inputs each fuzz test
tried is printed in the terminal summary.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "e2e"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from hostile_kit import FUZZ_COUNTS, Stores  # noqa: E402 - needs the path above

from petiole.testing.servers import require_module  # noqa: E402

STORE_KINDS = ["sqlite", "redis"]


@pytest.fixture(autouse=True)
def _no_petiole_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps and subprocesses here see only the settings each test gives them."""
    for name in list(os.environ):
        if name.startswith("PETIOLE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real redis-server for the session; each test starts from an empty one."""
    require_module("petiole_redis", install_hint="pip install -e plugins/petiole-redis")
    from petiole_redis.testing import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(params=STORE_KINDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Broker and results on SQLite (a file in this test's temp dir) or Redis."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'petiole.db'}"
    else:
        server = request.getfixturevalue("redis_server")
        with server.client() as client:
            client.flushall()
        url = server.url
    chosen = Stores(request.param, url)
    yield chosen
    chosen.close()


@pytest.fixture
def sqlite_stores(tmp_path: Path) -> Iterator[Stores]:
    chosen = Stores("sqlite", f"sqlite:///{tmp_path / 'petiole.db'}")
    yield chosen
    chosen.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FUZZ_COUNTS:
        return
    terminalreporter.section("hostile fuzz inputs tried")
    for what, count in sorted(FUZZ_COUNTS.items()):
        terminalreporter.write_line(f"{what}: {count}")
