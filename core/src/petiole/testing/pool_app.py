"""Tasks the pool conformance suite runs, importable by path in pool children.

Results are not stored (the suite reads outcomes, not results), so the app
needs no broker or result store. Each task signals through files in a
directory the test names, which works across processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from petiole.app import Petiole

APP_PATH = "petiole.testing.pool_app:app"

app = Petiole(
    "petiole-pool-suite",
    broker="memory://petiole-pool-suite",
    backend="memory://petiole-pool-suite",
    ignore_result=True,
    config_file=os.devnull,
)
app.main_path = APP_PATH


@app.task(name="pool_suite.touch")
def touch(directory: str, name: str) -> None:
    """Leave a file named after this job, with the pid that ran it."""
    (Path(directory) / name).write_text(str(os.getpid()))


@app.task(name="pool_suite.fail")
def fail() -> None:
    raise RuntimeError("failing on purpose")


@app.task(name="pool_suite.rendezvous")
def rendezvous(directory: str, name: str, expected: int, timeout_s: float) -> None:
    """Arrive, then wait until ``expected`` jobs have arrived: only jobs running
    at the same time can all get past this."""
    folder = Path(directory)
    (folder / f"{name}.arrived").write_text(str(os.getpid()))
    deadline = time.monotonic() + timeout_s
    while len(list(folder.glob("*.arrived"))) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError("the other jobs never ran alongside this one")
        time.sleep(0.01)


@app.task(name="pool_suite.block")
def block(directory: str, name: str, timeout_s: float) -> None:
    """Say it started, then wait until the test releases it (a file appears)."""
    folder = Path(directory)
    (folder / f"{name}.started").write_text(str(os.getpid()))
    deadline = time.monotonic() + timeout_s
    while not (folder / "release").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.01)


@app.task(name="pool_suite.crash")
def crash() -> None:
    """End the process running it abruptly, as a segfault or the OOM killer would."""
    os._exit(13)
