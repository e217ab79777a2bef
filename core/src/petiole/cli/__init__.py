"""The ``petiole`` command line (``main`` patches a green-pool worker first: see early.py)."""

from petiole.cli import early
from petiole.cli.main import cli

# Bound after the import above, which binds this package's ``main`` to the submodule.
main = early.main

__all__ = ["cli", "main"]
