"""What the ``petiole`` command does first: give a green-pool worker a patched process.

gevent and eventlet must monkey-patch the standard library before anything
else is imported: sockets, locks and threads made earlier stay blocking. By the
time a command line is parsed, this process has imported far too much (even
reading entry points imports ``threading`` and ``socket``). So when the command
is ``petiole worker -P NAME`` (or ``PETIOLE_WORKER_POOL=NAME``) and an
installed plugin declares a patch for that pool — an entry point named ``NAME``
in the group ``petiole.monkey_patch``, whose value is the function that patches
— this process replaces itself (``exec``, same PID, so signals still reach
the worker) with a fresh interpreter that calls that function before it
imports anything, then runs the command line unchanged.

Only the standard library is used here. A worker embedded in a program of your
own is patched by that program, first thing (``petiole_gevent.patch()``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points

# Imported here, not after deciding: the interpreter replaced by ``exec`` is
# discarded whatever it imported, and importing this module imports the
# ``petiole`` package (and so the app) anyway.
from petiole.cli.main import main as run_command_line

PATCH_GROUP = "petiole.monkey_patch"
#: Set for the re-executed process (to the pool's name) and removed by it once
#: patched, so a worker it starts in turn (a subprocess) is patched afresh.
PATCHED_ENV = "PETIOLE_PATCHED_FOR"
POOL_ENV = "PETIOLE_WORKER_POOL"


def requested_pool(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The pool a ``worker`` command line asks for (``-P``/``--pool``, else the
    environment); None for other commands."""
    if "worker" not in argv:
        return None
    after = list(argv[list(argv).index("worker") + 1 :])
    for index, arg in enumerate(after):
        if arg in ("-P", "--pool") and index + 1 < len(after):
            return after[index + 1]
        if arg.startswith("--pool="):
            return arg.partition("=")[2]
        if arg.startswith("-P") and len(arg) > 2:
            return arg[2:]
    return environ.get(POOL_ENV) or None


def patch_for(pool: str) -> EntryPoint | None:
    """The entry point that patches the process for ``pool``, if a plugin has one."""
    for entry_point in entry_points(group=PATCH_GROUP):
        if entry_point.name == pool:
            return entry_point
    return None


def patched_argv(entry_point: EntryPoint, argv: Sequence[str]) -> list[str]:
    """An interpreter command line that patches first, then runs ``petiole argv``."""
    module, attribute = entry_point.module, entry_point.attr
    bootstrap = (
        f"import {module}; {module}.{attribute}(); "
        f"import os; os.environ.pop({PATCHED_ENV!r}, None); "
        "from petiole.cli.main import main; main()"
    )
    return [sys.executable, "-c", bootstrap, *argv]


def main() -> None:
    argv = sys.argv[1:]
    pool = None if os.environ.get(PATCHED_ENV) else requested_pool(argv, os.environ)
    entry_point = patch_for(pool) if pool else None
    if entry_point is not None and os.name == "posix":
        os.environ[PATCHED_ENV] = entry_point.name
        # The interpreter running us, with our own arguments: no shell, nothing to inject.
        os.execv(sys.executable, patched_argv(entry_point, argv))  # noqa: S606
    run_command_line()
