"""The plugin as an app sees it: found through its entry point, loaded lazily,
and running tasks end to end with the core's pytest fixtures."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import petiole_example
import pytest
from petiole_example.testing import ExampleServer

from petiole import Petiole
from petiole.plugin_api import TESTS_MAY_IMPORT, core_imports_beyond, states


def test_the_plugin_is_listed_without_importing_its_components() -> None:
    code = """
import sys
from petiole import Petiole

registry = Petiole("t", config_file="/dev/null").plugins
info = registry.infos["example"]
assert (info.distribution, info.status) == ("petiole-example", "loaded"), info
for kind in ("transport", "result backend", "serializer"):
    assert "example" in registry.provided(kind), kind
loaded = [m for m in sys.modules if m.startswith("petiole_example.")]
assert loaded == ["petiole_example.plugin"], loaded
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def petiole_config(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The core's fixtures (petiole_app, petiole_worker) on this plugin's components."""
    server = ExampleServer(tmp_path).start()
    yield {
        "broker_url": server.url,
        "backend_url": server.url,
        "task_serializer": "example",
        "result_serializer": "example",
        "accept_content": ["example"],
    }
    server.stop()


def test_a_task_runs_end_to_end_on_the_example_components(
    petiole_app: Petiole, petiole_worker: object
) -> None:
    add = petiole_app.task(lambda x, y: x + y, name="example.add")

    result = add.delay(2, 3)

    assert result.get(timeout=10) == 5
    record = petiole_app.backend.get(result.id)
    assert record is not None
    assert (record.state, record.content_type) == (states.SUCCESS, "application/x-example+json")


def test_the_plugin_uses_only_the_plugin_api() -> None:
    """Everything else in the core may change; petiole.plugin_api is the contract."""
    assert core_imports_beyond(petiole_example) == {}
    # Its tests may drive an app, too.
    assert core_imports_beyond(Path(__file__).parent, allowed=TESTS_MAY_IMPORT) == {}
