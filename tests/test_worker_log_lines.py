"""What `petiole worker` logs per task: with no level chosen, failures but no line
per task received and finished (a quarter of a fast worker's time); with `-l INFO`,
those lines too, as Celery's `-l info`. Run for real, in subprocesses, with the
default pool (prefork) and the processes pool (whose children log the results)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole import Petiole
from petiole.logs import TASK_LOGGER
from petiole.worker import hooks

APP = """
from petiole import Petiole

app = Petiole("log-lines")


@app.task(name="loglines.double")
def double(x):
    return 2 * x


@app.task(name="loglines.fail")
def fail():
    raise ValueError("meant to fail")
"""

STOP_TIMEOUT_S = 30
_WORKER = [sys.executable, "-m", "petiole", "worker", "-A", "loglines_app", "-c", "1"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "loglines_app.py").write_text(textwrap.dedent(APP))
    return tmp_path


def _run_two_tasks(project: Path, *flags: str) -> str:
    """Start a worker with ``flags``, run one task that succeeds and one that fails,
    stop the worker gracefully, and return its log."""
    url = f"sqlite:///{project / 'p.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PETIOLE_", "CELERY_"))}
    env.update(PETIOLE_BROKER_URL=url, PETIOLE_BACKEND_URL=url, PYTHONPATH=str(project))
    log = project / "worker.log"
    worker = subprocess.Popen(
        [*_WORKER, "--logfile", str(log), *flags],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    producer = Petiole("producer", broker=url, backend=url, config_file="/dev/null")
    try:
        assert producer.send_task("loglines.double", args=[21]).get(timeout=60) == 42
        with pytest.raises(ValueError, match="meant to fail"):
            producer.send_task("loglines.fail").get(timeout=60)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(STOP_TIMEOUT_S) == 0
    finally:
        producer.close()
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    return log.read_text()


@pytest.mark.parametrize("pool", [[], ["-P", "processes"]], ids=["prefork", "processes"])
def test_with_no_level_chosen_failures_are_logged_but_not_a_line_per_task(
    project: Path, pool: list[str]
) -> None:
    text = _run_two_tasks(project, *pool)
    assert " ready: " in text
    assert "-l INFO logs every task received and finished" in text  # says how to get them
    assert "ValueError: meant to fail" in text  # the failure, with its traceback
    assert "loglines.fail[" in text
    assert "] received" not in text
    assert " succeeded in " not in text


@pytest.mark.parametrize("pool", [[], ["-P", "processes"]], ids=["prefork", "processes"])
def test_dash_l_info_logs_each_task_received_and_finished(project: Path, pool: list[str]) -> None:
    text = _run_two_tasks(project, "-l", "INFO", *pool)
    assert "] received" in text
    assert " succeeded in " in text
    assert ": 42" in text
    assert "-l INFO logs every task" not in text


# -- hooks.setup_logging's per-task lines, in this process -----------------------------


@pytest.fixture
def task_logger() -> Iterator[logging.Logger]:
    """The per-task logger and the root logger, put back as they were after the test."""
    root, tasks = logging.getLogger(), logging.getLogger(TASK_LOGGER)
    handlers, root_level, level = list(root.handlers), root.level, tasks.level
    yield tasks
    root.handlers[:] = handlers
    root.setLevel(root_level)
    tasks.setLevel(level)


@pytest.mark.parametrize(
    ("level", "task_lines", "root_level", "lines_on"),
    [
        (None, True, logging.INFO, False),  # no level chosen
        ("INFO", True, logging.INFO, True),
        ("DEBUG", True, logging.DEBUG, True),
        ("DEBUG", False, logging.DEBUG, False),  # a pool child whose worker has them off
        ("WARNING", True, logging.WARNING, False),
    ],
)
def test_setup_logging_sets_the_root_level_and_whether_each_task_is_logged(
    task_logger: logging.Logger,
    level: str | None,
    task_lines: bool,
    root_level: int,
    lines_on: bool,
) -> None:
    app = Petiole("log-lines-levels", broker="memory://", backend="memory://")
    try:
        hooks.setup_logging(app, level, task_lines=task_lines)
    finally:
        app.close()
    assert logging.getLogger().level == root_level
    assert task_logger.isEnabledFor(logging.INFO) is lines_on
    assert task_logger.isEnabledFor(logging.ERROR)  # failures, always
