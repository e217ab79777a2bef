"""``petiole-gevent`` (or ``python -m petiole_gevent``): the ``petiole`` command,
monkey-patched for gevent before anything else is imported.

``petiole-gevent worker -A proj.tasks -c 500`` runs ``petiole worker -A
proj.tasks -c 500 -P gevent``: the pool defaults to ``gevent`` (through
``PETIOLE_WORKER_POOL``, so ``-P`` still wins). Every other subcommand works
too, patched the same way.
"""

from __future__ import annotations

import os

from petiole_gevent.patching import patch

POOL_ENV = "PETIOLE_WORKER_POOL"


def main() -> None:
    patch()
    os.environ.setdefault(POOL_ENV, "gevent")
    # Imported only now, so everything Petiole creates is cooperative.
    from petiole.cli.main import cli

    cli.main(prog_name="petiole-gevent")


if __name__ == "__main__":
    main()
