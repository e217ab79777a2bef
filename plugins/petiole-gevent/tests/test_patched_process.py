"""The tests that need a gevent-patched process, run in one.

This pytest process is shared with every other test of the repository and is
never monkey-patched, so the pool conformance suite and the pool's own tests
(patched/suite_gevent.py) run in a child that patches before it imports
anything (patched/run_patched.py). Its report is shown when it fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PATCHED = Path(__file__).resolve().parent / "patched"


def test_pool_passes_the_conformance_suite_and_its_own_tests_in_a_patched_process() -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(PATCHED / "run_patched.py"),
            str(PATCHED / "suite_gevent.py"),
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert " passed" in run.stdout
