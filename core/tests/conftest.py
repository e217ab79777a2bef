from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from petiole import Petiole


@pytest.fixture
def app() -> Iterator[Petiole]:
    """An in-memory app, isolated from any config file or PETIOLE_* variable."""
    store = f"memory://{uuid.uuid4().hex}"  # memory stores are process-wide by name
    app = Petiole("test", broker=store, backend=store, config_file="/dev/null")
    yield app
    app.close()


@pytest.fixture(autouse=True)
def _no_petiole_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PETIOLE_"):
            monkeypatch.delenv(name)
