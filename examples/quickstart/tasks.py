"""Tasks for the quickstart. With no configuration, broker and results are the
embedded SQLite file ./petiole.db: no server to install."""

from __future__ import annotations

import hashlib

from petiole import Petiole

app = Petiole("quickstart")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def digest(text: str, rounds: int = 10_000) -> str:
    """A little CPU work, to show tasks running in parallel worker processes."""
    value = text.encode()
    for _ in range(rounds):
        value = hashlib.sha256(value).digest()
    return value.hex()[:16]


@app.task
def divide(x: float, y: float) -> float:
    return x / y
