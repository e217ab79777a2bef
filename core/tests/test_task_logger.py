"""get_task_logger: Celery's task logger, its records naming the running task."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from petiole import Petiole, get_task_logger
from petiole.logs import NO_TASK
from petiole.request import Request, current_request
from petiole.testing.in_thread import start_worker

logger = get_task_logger("proj.tasks")


def test_records_of_a_running_task_name_it_and_its_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = Petiole("logging", broker=f"sqlite:///{tmp_path / 'p.db'}", backend="memory://")

    @app.task(name="proj.tasks.add")
    def add(x: int, y: int) -> int:
        logger.info("adding %s and %s", x, y)
        return x + y

    caplog.set_level(logging.INFO, logger="proj.tasks")
    with start_worker(app):
        sent = add.delay(2, 3)
        assert sent.get(timeout=20) == 5
    logger.info("outside a task")
    inside, outside = [r for r in caplog.records if r.name == "proj.tasks"]
    assert inside.getMessage() == "adding 2 and 3"
    assert (inside.task_name, inside.task_id) == ("proj.tasks.add", sent.id)  # type: ignore[attr-defined]
    assert (outside.task_name, outside.task_id) == (NO_TASK, NO_TASK)  # type: ignore[attr-defined]


def test_a_task_name_from_a_message_cannot_forge_a_line(caplog: pytest.LogCaptureFixture) -> None:
    token = current_request.set(Request(id="id\r\n1", task="evil\n[ERROR] forged"))
    try:
        with caplog.at_level(logging.INFO, logger="proj.tasks"):
            logger.info("hello")
    finally:
        current_request.reset(token)
    [record] = caplog.records
    assert record.task_name == "evil\\n[ERROR] forged"  # type: ignore[attr-defined]
    assert record.task_id == "id\\r\\n1"  # type: ignore[attr-defined]


def test_the_logger_is_the_application_s_own_named_logger() -> None:
    assert get_task_logger("proj.tasks").logger is logging.getLogger("proj.tasks")
