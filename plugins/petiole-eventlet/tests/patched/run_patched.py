"""Run pytest in a eventlet-patched process: ``python run_patched.py [pytest args]``.

The pool needs a monkey-patched process, and a test run must never patch its
own process (every test of the repository shares it), so the tests that need
the patch run here, in a child that patches before it imports anything else.
"""

import sys

from petiole_eventlet import patch

patch()

import pytest  # noqa: E402 - imported after the patch, on purpose

sys.exit(pytest.main(sys.argv[1:]))
