"""The plugin as Petiole sees it, checked in child processes so that this one (shared
with every other test) never imports eventlet."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any


def run_python(code: str) -> Any:
    """Run ``code`` in a fresh interpreter; return the JSON it prints last."""
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.splitlines()[-1])


def test_loading_the_plugin_registers_the_pool_without_importing_eventlet() -> None:
    found = run_python(
        """
        import json, os, sys
        from petiole.plugins import PluginRegistry

        registry = PluginRegistry()
        registry.load_all()
        registry.get("pool", "processes").component  # a worker on another pool
        loaded_eventlet = "eventlet" in sys.modules
        factory = registry.get("pool", "eventlet").component
        print(json.dumps([loaded_eventlet, factory.__module__, factory.__name__]))
        """
    )
    assert found == [False, "petiole_eventlet.pool", "EventletPool"]


def test_the_pool_refuses_to_start_in_a_process_that_is_not_patched() -> None:
    message = run_python(
        """
        import json
        from petiole.errors import ConfigError
        from petiole.execution import TaskRunner
        from petiole.testing.pool_app import app
        from petiole_eventlet.pool import EventletPool

        try:
            EventletPool(10).start(TaskRunner(app))
        except ConfigError as exc:
            print(json.dumps(str(exc)))
        """
    )
    assert "monkey-patched" in message
    assert "petiole-eventlet worker" in message


def test_patch_warns_when_petiole_was_imported_first() -> None:
    warned = run_python(
        """
        import json, warnings
        import petiole
        from petiole_eventlet import patch

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            patch()
        print(json.dumps([str(w.message) for w in caught if w.category is RuntimeWarning]))
        """
    )
    assert len(warned) == 1
    assert "imported before eventlet" in warned[0]
