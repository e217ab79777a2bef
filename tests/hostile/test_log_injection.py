"""A task id or queue name with a line break in it must not forge lines in the
worker's log: whoever sends tasks must not be able to write what an operator
reads as the worker's own words."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Workers
from hostile_app import register
from hostile_kit import Stores, publish_body

pytestmark = pytest.mark.slow

FORGED_PREFIX = "[2026-01-01"
# A queue name cannot hold a comma (-Q splits on them), hence the dot.
FORGED_LINE = "[2026-01-01 00:00:00{} INFO MainProcess] petiole.worker: forged {}"


def _forged_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith(FORGED_PREFIX)]


def test_task_ids_with_line_breaks_do_not_forge_worker_log_lines(
    stores: Stores, tmp_path: Path
) -> None:
    app = register(stores.app())
    ids = {
        "succeeds": "abc\n" + FORGED_LINE.format(",000", "success"),
        "fails": "def\r\n" + FORGED_LINE.format(",000", "failure"),
        "is not registered": "ghi\n" + FORGED_LINE.format(",000", "dead letter"),
    }
    workers = Workers(stores.env(), tmp_path, app_module="hostile_app")
    try:
        workers.start("-P", "threads", "-c", "2", "-l", "DEBUG")
        workers.wait_ready()
        results = [
            app.tasks["hostile.echo"].apply_async((1,), task_id=ids["succeeds"]),
            app.tasks["hostile.fail"].apply_async(task_id=ids["fails"]),
        ]
        app.send_task("hostile.missing\n" + FORGED_LINE.format(",000", "name"))
        app.send_task("hostile.missing", task_id=ids["is not registered"])
        assert app.backend.wait([r.id for r in results], timeout_s=20).keys() == {
            r.id for r in results
        }, workers.logs()
    finally:
        codes = workers.stop_all()
    log = workers.log(0)
    assert "forged success" in log, "the successful task's id was never logged"
    assert "forged failure" in log, "the failed task's id was never logged"
    assert not _forged_lines(log), log[-4000:]
    assert codes == [0], log[-4000:]


def test_queue_names_with_line_breaks_do_not_forge_worker_log_lines(
    stores: Stores, tmp_path: Path
) -> None:
    queue = "hostile\n" + FORGED_LINE.format(".000", "queue")
    app = register(stores.app())
    workers = Workers(stores.env(), tmp_path, app_module="hostile_app")
    try:
        workers.start("-P", "threads", "-c", "2", "-l", "DEBUG", "-Q", queue)
        workers.wait_ready()
        result = app.tasks["hostile.echo"].apply_async((1,), queue=queue)
        publish_body(app, queue, "hostile.echo", b"not json")
        assert result.get(timeout=20) == 1, workers.logs()
    finally:
        codes = workers.stop_all()
    log = workers.log(0)
    assert "forged queue" in log, "the queue name was never logged"
    assert not _forged_lines(log), log[-4000:]
    assert codes == [0], log[-4000:]
