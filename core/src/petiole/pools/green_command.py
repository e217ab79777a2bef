"""The command a green-pool plugin installs: ``petiole``, in a process its plugin
has monkey-patched before anything else was imported, with its pool the default.

``petiole-gevent worker -A proj.tasks -c 500`` runs ``petiole worker -A
proj.tasks -c 500 -P gevent``: the pool defaults to the plugin's (through
``PETIOLE_WORKER_POOL``, so ``-P`` still wins). Every other subcommand works
too, patched the same way.

Importing this module imports the command line, and so Petiole: a plugin's
``main()`` patches first and imports it after (``petiole_gevent.__main__``).
"""

from __future__ import annotations

import os

from petiole.cli.early import POOL_ENV
from petiole.cli.main import cli


def run_command(pool: str) -> None:
    """Run the ``petiole`` command line as ``petiole-<pool>``, the pool defaulting to ``pool``."""
    os.environ.setdefault(POOL_ENV, pool)
    cli.main(prog_name=f"petiole-{pool}")
