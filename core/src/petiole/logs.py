"""One log format for the CLI, the worker and its pool children."""

from __future__ import annotations

import logging

FORMAT = "[%(asctime)s %(levelname)s %(processName)s] %(name)s: %(message)s"


def setup_logging(level: str | int) -> None:
    logging.basicConfig(format=FORMAT)
    logging.getLogger().setLevel(level.upper() if isinstance(level, str) else level)
