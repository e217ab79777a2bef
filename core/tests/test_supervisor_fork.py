"""What a worker process inherits from the supervisor that forks it: the loaded app,
shared until written, and kept from the child's garbage collector so that its
collections do not copy every inherited page."""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable
from pathlib import Path

from petiole.worker.held import HeldReporter
from petiole.worker.supervisor import STOP_SIGNAL, Supervisor


def test_a_worker_process_inherits_objects_frozen_and_the_supervisor_keeps_none(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "frozen-in-child"
    frozen_before = gc.get_freeze_count()

    def report_then_stop(index: int, ready: Callable[[], None], held: HeldReporter | None) -> int:
        seen.write_text(str(gc.get_freeze_count()))
        ready()
        os.kill(os.getppid(), signal.SIGTERM)  # the supervisor: stop every worker process
        signal.sigwait({STOP_SIGNAL})
        return 0

    assert Supervisor(1, report_then_stop).run() == 0
    assert int(seen.read_text()) > 0
    assert gc.get_freeze_count() == frozen_before
