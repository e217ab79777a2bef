"""What a new user sees: where the data lives, which tasks a worker has, what each
task did, and what went wrong while importing the app."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from petiole import Petiole, ResultTimeout, diagnosis
from petiole.cli import cli
from petiole.errors import ConfigError
from petiole.loading import load_app
from petiole.logs import TASK_LOGGER
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project directory, current and importable, with no PETIOLE_* set."""
    for name in [n for n in os.environ if n.startswith(("PETIOLE_", "CELERY_"))]:
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

    # Its own level too: `petiole` run in this process (other tests) turns the
    # per-task lines off when no level is chosen, as the worker command does.
    with (
        caplog.at_level(logging.INFO, logger="petiole.worker"),
        caplog.at_level(logging.INFO, logger=TASK_LOGGER),
        start_worker(app),
    ):
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


def test_why_says_a_pending_tasks_message_waits_in_its_queue_on_which_broker(
    project: Path,
) -> None:
    app = Petiole("proj", config_file="/dev/null")

    @app.task(queue="mail")
    def send_welcome(user_id: int) -> None: ...

    result = send_welcome.delay(7)
    why = result.why()
    app.close()
    assert f"task {send_welcome.name}[{result.id}] is PENDING" in why
    assert f"sqlite:///{project / 'petiole.db'}" in why
    assert "'mail' holds 1 message" in why
    assert "-Q mail" in why


def test_why_gives_the_dead_letter_reason_of_a_task_no_worker_knows(project: Path) -> None:
    app = Petiole("proj", broker="memory://why-dead", backend="memory://why-dead")
    result = app.send_task("proj.not_defined_anywhere", [1])
    with start_worker(app):
        wait_until(lambda: app.transport.dead_letters("default"), timeout_s=10)
    why = app.AsyncResult(result.id).why()  # a handle built from the id alone
    app.close()
    assert "is FAILURE on worker " in why  # recorded by the worker that refused it
    assert "its message was dead-lettered from queue 'default', not run" in why
    assert "is not registered on this worker" in why
    assert "petiole dlq list -Q default" in why


def test_why_says_when_the_message_is_not_on_this_broker(project: Path) -> None:
    app = Petiole("proj", broker="memory://why-gone", backend="memory://why-gone")
    why = app.AsyncResult("no-such-task").why()
    app.close()
    assert "is PENDING and its message is not on broker memory://why-gone" in why
    assert "another broker" in why


def test_petiole_result_prints_why_for_a_task_not_done(project: Path) -> None:
    db = project / "p.db"
    app = Petiole("proj", broker=f"sqlite:///{db}", backend=f"sqlite:///{db}")
    sent = app.send_task("proj.add", [1, 2], queue="slow")
    app.close()
    out = CliRunner().invoke(
        cli,
        ["result", sent.id],
        env={
            "PETIOLE_BROKER_URL": f"sqlite:///{db}",
            "PETIOLE_BACKEND_URL": f"sqlite:///{db}",
            "PETIOLE_DEFAULT_QUEUE": "slow",
        },
    )
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["state"] == "PENDING"
    assert "'slow' holds 1 message" in shown["why"]


def test_a_get_that_times_out_says_where_the_task_stands(project: Path) -> None:
    app = Petiole("proj", config_file="/dev/null")

    @app.task(queue="mail")
    def send_welcome(user_id: int) -> None: ...

    result = send_welcome.delay(7)
    with pytest.raises(ResultTimeout) as caught:
        result.get(timeout=0.2)
    app.close()
    message = str(caught.value)
    assert message.startswith("not ready after 0.")
    assert f"task {send_welcome.name}[{result.id}] is PENDING" in message
    assert f"broker sqlite:///{project / 'petiole.db'}" in message
    assert "'mail' holds 1 message" in message


def test_saying_why_a_get_timed_out_takes_at_most_its_budget() -> None:
    app = Petiole("slow", broker="memory://why-slow", backend="memory://why-slow")
    proceed = threading.Event()
    # A broker that hangs: the fault is the point, and no real one hangs on demand.
    app.transport.size = lambda queue: proceed.wait(30)  # type: ignore[method-assign,assignment,return-value]
    started = time.monotonic()
    why = diagnosis.explain_within(0.3, app, "t-1", queue="default")
    elapsed = time.monotonic() - started
    proceed.set()
    app.close()
    assert elapsed < 2.0
    assert "could not be told within 0.3 s" in why
    assert "t-1" in why
