"""The plugin as an app sees it: found through its entry point, loaded lazily,
and carrying tasks end to end through a worker on the in-process memory://
transport and backend."""

from __future__ import annotations

import ast
import datetime as dt
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import petiole_msgpack
import pytest
from petiole_msgpack.serializer import MsgpackSerializer

from petiole import Petiole
from petiole.plugin_api import states

# A task's arguments and result: each of a type JSON has no value for.
ARGUMENTS = (
    dt.datetime(2024, 3, 4, 5, 6, 7, 890123, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Decimal("12345.6789"),
    b"\x00\x01\xfe\xff",
)


def test_the_plugin_is_listed_without_importing_its_serializer() -> None:
    code = """
import sys
from petiole import Petiole

registry = Petiole("t", config_file="/dev/null").plugins
info = registry.infos["msgpack"]
assert (info.distribution, info.status) == ("petiole-msgpack", "loaded"), info
assert "msgpack" in registry.provided("serializer")
loaded = [m for m in sys.modules if m.startswith("petiole_msgpack.")]
assert loaded == ["petiole_msgpack.plugin"], loaded
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_an_app_finds_the_serializer_by_name_and_by_content_type() -> None:
    app = Petiole("t", config_file="/dev/null")

    assert isinstance(app.serializer("msgpack"), MsgpackSerializer)
    assert isinstance(app.serializer_for_content_type("application/x-msgpack"), MsgpackSerializer)


@pytest.fixture
def petiole_config() -> dict[str, Any]:
    """The core's fixtures (petiole_app, petiole_worker) with msgpack on the wire."""
    store = f"memory://{uuid.uuid4().hex}"  # memory stores are process-wide by name
    return {
        "broker_url": store,
        "backend_url": store,
        "task_serializer": "msgpack",
        "result_serializer": "msgpack",
        "accept_content": ["msgpack"],
    }


def test_a_task_takes_and_returns_rich_values_through_a_worker(
    petiole_app: Petiole, petiole_worker: object
) -> None:
    echo = petiole_app.task(lambda *args: list(args), name="msgpack.echo")

    result = echo.delay(*ARGUMENTS)

    got = result.get(timeout=10)
    assert got == list(ARGUMENTS)
    assert [type(v) for v in got] == [type(v) for v in ARGUMENTS]
    assert got[0].utcoffset() == dt.timedelta(hours=-7)
    record = petiole_app.backend.get(result.id)
    assert record is not None
    assert (record.state, record.content_type) == (states.SUCCESS, "application/x-msgpack")


def _petiole_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "petiole"}


def test_the_plugin_uses_only_the_plugin_api() -> None:
    """Everything else in the core may change; petiole.plugin_api is the contract."""
    for path in sorted(Path(petiole_msgpack.__file__).parent.rglob("*.py")):
        assert _petiole_imports(path) <= {"petiole.plugin_api"}, path
    for path in sorted(Path(__file__).parent.rglob("*.py")):  # tests may drive an app, too
        assert _petiole_imports(path) <= {"petiole.plugin_api", "petiole"}, path
