"""The command line's first step: which pool a worker asks for, and how a green
pool's worker is handed to a patched interpreter."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from petiole import __version__
from petiole.cli.early import PATCH_GROUP, patched_argv, requested_pool


@pytest.mark.parametrize(
    ("argv", "pool"),
    [
        (["worker", "-A", "proj", "-P", "gevent"], "gevent"),
        (["-A", "proj", "worker", "--pool", "eventlet", "-c", "9"], "eventlet"),
        (["worker", "--pool=gevent"], "gevent"),
        (["worker", "-Pgevent"], "gevent"),
        (["worker", "-A", "proj"], "from-env"),
        (["call", "proj.add", "--args", '["-P", "gevent"]'], None),
        (["--version"], None),
    ],
)
def test_requested_pool_reads_the_worker_command_line_then_the_environment(
    argv: list[str], pool: str | None
) -> None:
    assert requested_pool(argv, {"PETIOLE_WORKER_POOL": "from-env"}) == pool


def test_requested_pool_is_none_when_neither_says() -> None:
    assert requested_pool(["worker", "-A", "proj"], {}) is None


def test_the_patched_interpreter_patches_before_it_imports_petiole() -> None:
    entry_point = EntryPoint("gevent", "petiole_gevent.patching:patch", PATCH_GROUP)

    argv = patched_argv(entry_point, ["worker", "-A", "proj", "-P", "gevent"])

    assert argv[0] == sys.executable
    assert argv[1] == "-c"
    bootstrap = argv[2]
    assert bootstrap.index("petiole_gevent.patching.patch()") < bootstrap.index("petiole.cli")
    assert argv[3:] == ["worker", "-A", "proj", "-P", "gevent"]


def test_a_pool_no_plugin_patches_for_runs_the_command_in_this_process() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "petiole", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert __version__ in run.stdout
