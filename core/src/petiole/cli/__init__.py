"""The ``petiole`` command line."""

from petiole.cli.main import cli, main

__all__ = ["cli", "main"]
