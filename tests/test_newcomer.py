"""What a new user sees: where the data lives, which tasks a worker has, what each
task did, and what went wrong while importing the app."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from petiole import Petiole
from petiole.cli import cli
from petiole.errors import ConfigError
from petiole.loading import load_app
from petiole.testing.in_thread import start_worker


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project directory, current and importable, with no PETIOLE_* set."""
    for name in [n for n in list(__import__("os").environ) if n.startswith("PETIOLE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("newcomer_"):
            del sys.modules[name]


def test_ready_line_names_the_sqlite_files_absolute_path_and_the_tasks(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = Petiole("proj", config_file="/dev/null")  # the default: ./petiole.db

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with caplog.at_level(logging.INFO, logger="petiole.worker"), start_worker(app):
        pass
    app.close()
    ready = next(r.getMessage() for r in caplog.records if " ready: " in r.getMessage())
    assert f"broker=sqlite:///{project / 'petiole.db'}" in ready
    assert f"backend=sqlite:///{project / 'petiole.db'}" in ready
    assert "queues=default" in ready
    assert f"tasks: {add.name}" in caplog.text


def test_a_worker_whose_app_has_no_tasks_warns_at_start(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = Petiole("empty", broker="memory://newcomer", backend="memory://newcomer")
    with caplog.at_level(logging.WARNING, logger="petiole.worker"), start_worker(app):
        pass
    app.close()
    assert "registers no tasks" in caplog.text
    assert "-A" in caplog.text


def test_each_task_is_logged_received_and_succeeded_with_its_runtime_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Petiole("logs", broker="memory://newcomer-logs", backend="memory://newcomer-logs")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with caplog.at_level(logging.INFO, logger="petiole.worker"), start_worker(app):
        result = add.delay(2, 3)
        assert result.get(timeout=10) == 5
    app.close()
    assert f"task {add.name}[{result.id}] received" in caplog.text
    assert f"task {add.name}[{result.id}] succeeded in " in caplog.text
    assert caplog.text.rstrip().count(": 5") >= 1


def test_an_app_module_that_waits_for_a_result_at_import_says_so(project: Path) -> None:
    (project / "newcomer_blocking.py").write_text(
        "from petiole import Petiole, ResultTimeout\n"
        "app = Petiole('p', broker='memory://newcomer-import', backend='memory://newcomer-import')\n"
        "@app.task\n"
        "def add(x, y):\n"
        "    return x + y\n"
        "add.delay(2, 3).get(timeout=0.1)\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_app("newcomer_blocking")
    message = str(caught.value)
    assert "importing the app module 'newcomer_blocking'" in message
    assert "ResultTimeout" in message
    assert 'if __name__ == "__main__":' in message


def test_the_app_can_be_named_in_the_config_file(project: Path) -> None:
    db = project / "p.db"
    (project / "newcomer_tasks.py").write_text(
        "from petiole import Petiole\n"
        "app = Petiole('p', default_queue='from-the-app')\n"
        "@app.task(name='newcomer.add')\n"
        "def add(x, y):\n"
        "    return x + y\n"
    )
    (project / "petiole.toml").write_text(
        f'app = "newcomer_tasks:app"\nbroker_url = "sqlite:///{db}"\nbackend_url = "sqlite:///{db}"\n'
    )
    # `petiole call` with no -A sends through the configured app: to its default queue.
    result = CliRunner().invoke(cli, ["call", "newcomer.add", "--args", "[2, 3]"])
    assert result.exit_code == 0, result.output
    app = load_app("newcomer_tasks")
    assert app.transport.size("from-the-app") == 1
    with start_worker(app):
        assert app.AsyncResult(result.output.strip()).get(timeout=10) == 5
    app.close()
