"""The tests that need a gevent-patched process, run in one.

This pytest process is shared with every other test of the repository and is
never monkey-patched, so the green-pool suite (patched/suite_gevent.py) runs in a
child that patches before it imports anything. Its report is shown when it fails.
"""

from __future__ import annotations

from pathlib import Path

from petiole.testing.green_suite import run_patched_suite

SUITE = Path(__file__).resolve().parent / "patched" / "suite_gevent.py"


def test_pool_passes_the_green_pool_suite_in_a_patched_process() -> None:
    run_patched_suite("petiole_gevent", SUITE)
