"""``petiole-eventlet`` (or ``python -m petiole_eventlet``): the ``petiole`` command, the
pool ``eventlet`` by default, patched before anything else is imported; see
:mod:`petiole.pools.green_command`.
"""

from __future__ import annotations

from petiole_eventlet.patching import patch


def main() -> None:
    patch()
    # Imported only now, so everything Petiole creates is cooperative.
    from petiole.pools.green_command import run_command

    run_command("eventlet")


if __name__ == "__main__":
    main()
