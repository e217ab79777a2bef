"""The plugin as an app sees it: found through its entry point, loaded lazily,
and compressing the bodies of tasks a worker runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import petiole_zstd
import pytest
from petiole_zstd.codec import ZstdCodec

from petiole import Petiole
from petiole.plugin_api import TESTS_MAY_IMPORT, core_imports_beyond


def test_the_plugin_is_listed_without_importing_its_codec() -> None:
    code = """
import sys
from petiole import Petiole

registry = Petiole("t", config_file="/dev/null").plugins
info = registry.infos["zstd"]
assert (info.distribution, info.status) == ("petiole-zstd", "loaded"), info
assert "zstd" in registry.provided("codec")
loaded = [m for m in sys.modules if m.startswith("petiole_zstd.") or m == "zstandard"]
assert loaded == ["petiole_zstd.plugin"], loaded
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def petiole_config(petiole_config: dict[str, Any]) -> dict[str, Any]:
    """The core's fixtures (petiole_app, petiole_worker), compressing every body."""
    return {**petiole_config, "compression": "zstd", "compression_min_bytes": 0}


def test_the_app_builds_the_codec_on_first_use(petiole_app: Petiole) -> None:
    assert isinstance(petiole_app.codec("zstd"), ZstdCodec)


def test_bodies_are_sent_as_zstd_frames(petiole_app: Petiole) -> None:
    petiole_app.send_task("zstd.echo", ["x" * 1000])
    (delivery,) = petiole_app.transport.reserve(["default"], max_messages=1, wait_s=1, lease_s=30)
    assert b'"content_encoding":"zstd"' in delivery.payload
    assert delivery.payload.endswith(ZstdCodec().encode(b'[["' + b"x" * 1000 + b'"],{}]'))


def test_a_task_runs_end_to_end_with_zstd_bodies(
    petiole_app: Petiole, petiole_worker: object
) -> None:
    join = petiole_app.task(lambda *parts: "".join(parts), name="zstd.join")

    result = join.delay("a" * 5000, "b")

    assert result.get(timeout=10) == "a" * 5000 + "b"


def test_the_plugin_uses_only_the_plugin_api() -> None:
    """Everything else in the core may change; petiole.plugin_api is the contract."""
    assert core_imports_beyond(petiole_zstd) == {}
    # Its tests may drive an app, too.
    assert core_imports_beyond(Path(__file__).parent, allowed=TESTS_MAY_IMPORT) == {}
