from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

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
        if name.startswith(("PETIOLE_", "CELERY_")):
            monkeypatch.delenv(name)


# The tests import their shared helpers (core_helpers.py) from this folder.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
