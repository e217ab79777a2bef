"""End-to-end tests import harness.py and e2e_app.py from this folder."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole import Petiole
from petiole.loading import load_app

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture
def canvas_app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Petiole]:
    """``canvas_app`` in this process, on the broker and results of the test
    module's ``env`` fixture (the workers' environment)."""
    for name in ("PETIOLE_BROKER_URL", "PETIOLE_BACKEND_URL", "PETIOLE_LEASE_S"):
        monkeypatch.setenv(name, env[name])
    app = load_app("canvas_app")
    app.configure(broker_url=env["PETIOLE_BROKER_URL"], backend_url=env["PETIOLE_BACKEND_URL"])
    yield app
    app.close()
