"""``petiole-gevent`` (or ``python -m petiole_gevent``): the ``petiole`` command, the
pool ``gevent`` by default, patched before anything else is imported; see
:mod:`petiole.pools.green_command`.
"""

from __future__ import annotations

from petiole_gevent.patching import patch


def main() -> None:
    patch()
    # Imported only now, so everything Petiole creates is cooperative.
    from petiole.pools.green_command import run_command

    run_command("gevent")


if __name__ == "__main__":
    main()
