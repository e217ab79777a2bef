"""The quickstart: start a worker, send tasks, print their results, stop the worker.

Run it with `scripts/quickstart` from the repository root (or `python run.py`
here, once petiole is installed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tasks import add, app, digest, divide  # noqa: E402

from petiole import AsyncResult, ResultTimeout  # noqa: E402
from petiole.diagnosis import location  # noqa: E402


def wait(result: AsyncResult, worker: subprocess.Popen[bytes]) -> object:
    """The task's value (or exception); fails fast if the worker died."""
    while True:
        try:
            return result.get(timeout=1, propagate=False)
        except ResultTimeout:
            if worker.poll() is not None:
                tail = (HERE / "worker.log").read_text(errors="replace")[-2000:]
                raise SystemExit(
                    f"the worker exited with code {worker.returncode}; its log ends:\n{tail}"
                ) from None


def main() -> int:
    os.chdir(HERE)
    print(f"broker and results: {location(app.transport, app.settings.broker_url)}")
    # The worker logs each task (and the intended failure's traceback) to a file, so
    # this terminal shows the results; the log is there to read afterwards.
    log = HERE / "worker.log"
    print(f"worker log: {log}")
    worker = subprocess.Popen(
        [sys.executable, "-m", "petiole", "worker", "-A", "tasks", "-c", "2", "-l", "info"],
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    try:
        started = time.monotonic()
        sums = [add.delay(i, i * 10) for i in range(10)]
        digests = [digest.delay(f"petiole-{i}") for i in range(4)]
        failing = divide.delay(1, 0)
        for i, result in enumerate(sums):
            print(f"add({i}, {i * 10}) = {wait(result, worker)}")
        for i, result in enumerate(digests):
            print(f"digest('petiole-{i}') = {wait(result, worker)}")
        error = wait(failing, worker)
        print(f"divide(1, 0) failed as expected: {type(error).__name__}: {error}")
        print(f"{len(sums) + len(digests) + 1} tasks done in {time.monotonic() - started:.2f} s")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    print(f"worker stopped (exit code {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
