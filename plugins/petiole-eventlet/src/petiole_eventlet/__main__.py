"""``petiole-eventlet`` (or ``python -m petiole_eventlet``): the ``petiole`` command,
monkey-patched for eventlet before anything else is imported.

``petiole-eventlet worker -A proj.tasks -c 500`` runs ``petiole worker -A
proj.tasks -c 500 -P eventlet``: the pool defaults to ``eventlet`` (through
``PETIOLE_WORKER_POOL``, so ``-P`` still wins). Every other subcommand works
too, patched the same way.
"""

from __future__ import annotations

import os

from petiole_eventlet.patching import patch

POOL_ENV = "PETIOLE_WORKER_POOL"


def main() -> None:
    patch()
    os.environ.setdefault(POOL_ENV, "eventlet")
    # Imported only now, so everything Petiole creates is cooperative.
    from petiole.cli.main import cli

    cli.main(prog_name="petiole-eventlet")


if __name__ == "__main__":
    main()
