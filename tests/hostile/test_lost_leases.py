"""A worker that lost the leases of messages it prefetched (it was stopped for
longer than lease_s, and another worker has run them since) does not start
them when it wakes: it drops them, naming their task ids in its log."""

from __future__ import annotations

import collections
import os
import signal
from pathlib import Path

import pytest
from harness import Workers
from hostile_app import register
from hostile_kit import Stores

from petiole.testing import wait_until

pytestmark = pytest.mark.slow

LEASE_S = "2"
BLOCK_QUEUE = "blocker"
WORK_QUEUE = "work"


def _named_as_lost(log: str, task_id: str) -> bool:
    """Whether a line of ``log`` names ``task_id`` as a lost lease (not merely received)."""
    return any(task_id in line and "lease" in line.lower() for line in log.splitlines())


def _runs(path: Path) -> collections.Counter[str]:
    text = path.read_text() if path.exists() else ""
    return collections.Counter(line for line in text.splitlines() if line)


def test_prefetched_messages_whose_lease_was_lost_are_dropped_without_running(
    stores: Stores, tmp_path: Path
) -> None:
    app = register(stores.app())
    record = app.tasks["hostile.record"]
    runs, release = tmp_path / "runs.txt", tmp_path / "release"
    # The first worker takes all four at once (one thread: prefetch 1 x 4): it runs
    # the blocker and holds the other three, unstarted, behind it. (Not solo: a
    # process running its tasks itself hands back what waits behind a task it does
    # not know as short, core/tests/test_hand_back.py.)
    blocker = record.apply_async((str(runs), str(release)), queue=BLOCK_QUEUE)
    held = [record.apply_async((str(runs),), queue=WORK_QUEUE).id for _ in range(3)]

    workers = Workers(stores.env(lease_s=LEASE_S), tmp_path, app_module="hostile_app")
    try:
        first = workers.start(
            "-P", "threads", "-c", "1", "-Q", f"{BLOCK_QUEUE},{WORK_QUEUE}", "-l", "INFO"
        )
        assert wait_until(lambda: _runs(runs)[blocker.id] == 1, timeout_s=30), workers.logs()
        unheld = app.transport.reserve([WORK_QUEUE], max_messages=3, wait_s=0, lease_s=30)
        for delivery in unheld:
            app.transport.nack(delivery)
        assert not unheld, "the first worker did not prefetch the tasks behind the blocker"
        os.kill(first.pid, signal.SIGSTOP)
        try:
            # Stopped past its leases: a second worker (not consuming the blocker's
            # queue) takes the three held messages and runs them.
            workers.start("-P", "threads", "-c", "2", "-Q", WORK_QUEUE)
            ran_elsewhere = wait_until(lambda: all(_runs(runs)[i] for i in held), timeout_s=20)
            assert ran_elsewhere, workers.logs()
            assert wait_until(lambda: all(app.AsyncResult(i).ready() for i in held), timeout_s=10)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        release.touch()
        assert blocker.get(timeout=10) == blocker.id

        def settled() -> bool:
            log = workers.log(0)
            dropped = all(_named_as_lost(log, task_id) for task_id in held)
            ran_twice = any(count > 1 for count in _runs(runs).values())
            return dropped or ran_twice

        wait_until(settled, timeout_s=10)
    finally:
        codes = workers.stop_all(timeout_s=15)
        workers.kill_all()

    ran = _runs(runs)
    # Each held message ran once, on the second worker. The blocker's own lease ran
    # out while its worker was stopped too: at least once lets that worker, once
    # resumed, take it over and run it again (a running task "may run twice").
    assert {task_id: ran[task_id] for task_id in held} == dict.fromkeys(held, 1), (
        ran,
        workers.logs(),
    )
    assert ran[blocker.id] >= 1, (ran, workers.logs())
    assert set(ran) == {blocker.id, *held}, (ran, workers.logs())
    first_log = workers.log(0)
    unnamed = [task_id for task_id in held if not _named_as_lost(first_log, task_id)]
    assert not unnamed, f"the first worker's log does not name {unnamed} as lost:\n{first_log}"
    assert codes == [0, 0], workers.logs()
