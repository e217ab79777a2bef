"""The worker's hooks: each is called where and with what hookspecs.py documents,
and one that raises is logged and never breaks the worker."""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from core_helpers import importable_app

from petiole import Petiole, hookimpl
from petiole.cli import cli
from petiole.envelope import PROTOCOL_VERSION, Envelope
from petiole.logs import EscapeControlCharacters
from petiole.pools.base import Job
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker
from petiole.worker import Worker, hooks

# -- an app whose tasks run in pool children -------------------------------------------

CHILD_APP = """
import os
import time
from pathlib import Path

from petiole import Petiole, hookimpl

MARKS = Path(os.environ["HOOKS_TEST_MARKS"])
app = Petiole("hooks-in-children")


class ChildHooks:
    @hookimpl
    def petiole_setup_logging(self, app, loglevel, logfile):
        (MARKS / f"logging-{os.getpid()}").write_text(loglevel)
        return True

    @hookimpl
    def petiole_worker_process_init(self, app, pool, pid):
        (MARKS / f"init-{pid}").write_text(f"{pool} {app.name}")


class BrokenInit:
    @hookimpl
    def petiole_worker_process_init(self, app, pool, pid):
        raise RuntimeError("a plugin that fails to set up")


app.register_plugin(BrokenInit(), name="broken-init")
app.register_plugin(ChildHooks(), name="child-hooks")


@app.task(name="hooks.whoami")
def whoami():
    pid = os.getpid()
    return [pid, (MARKS / f"init-{pid}").read_text()]


@app.task(name="hooks.block")
def block(seconds):
    time.sleep(seconds)
"""


@pytest.fixture
def child_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Petiole]:
    """The app above, importable by path (pool children load it), on SQLite."""
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("HOOKS_TEST_MARKS", str(marks))
    with importable_app(CHILD_APP, tmp_path, monkeypatch, prefix="hooks_app") as app:
        yield app


class Calls:
    """Records hook calls as (hook name, arguments)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def add(self, name: str, **arguments: Any) -> None:
        with self._lock:
            self.seen.append((name, arguments))

    def of(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [arguments for seen, arguments in self.seen if seen == name]

    def names(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self.seen]


class Recorder:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    @hookimpl
    def petiole_worker_process_init(self, app: Petiole, pool: str, pid: int) -> None:
        self.calls.add("process_init", app=app, pool=pool, pid=pid)

    @hookimpl
    def petiole_task_received(self, worker: Worker, job: Job) -> None:
        self.calls.add("received", worker=worker, job=job)

    @hookimpl
    def petiole_task_prerun(self, task: Any, request: Any) -> None:
        self.calls.add("prerun", task_id=request.id)

    @hookimpl
    def petiole_task_revoked(
        self, worker: Worker, envelope: Envelope, reason: str, terminated: bool
    ) -> None:
        self.calls.add(
            "revoked", worker=worker, envelope=envelope, reason=reason, terminated=terminated
        )

    @hookimpl
    def petiole_task_unknown(self, worker: Worker, envelope: Envelope, queue: str) -> None:
        self.calls.add("unknown", worker=worker, envelope=envelope, queue=queue)

    @hookimpl
    def petiole_task_rejected(
        self, worker: Worker, queue: str, cause: str, reason: str, envelope: Envelope | None
    ) -> None:
        self.calls.add(
            "rejected", worker=worker, queue=queue, cause=cause, reason=reason, envelope=envelope
        )


@pytest.fixture
def calls(app: Petiole) -> Calls:
    calls = Calls()
    app.register_plugin(Recorder(calls), name="recorder")
    return calls


# -- petiole_worker_process_init -------------------------------------------------------


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_process_init_runs_once_in_the_worker_for_an_in_process_pool_before_any_task(
    app: Petiole, calls: Calls, pool: str
) -> None:
    @app.task
    def echo(x: int) -> int:
        return x

    with start_worker(app, pool=pool):
        assert [echo.delay(i).get(timeout=5) for i in range(3)] == [0, 1, 2]
    assert calls.of("process_init") == [{"app": app, "pool": pool, "pid": os.getpid()}]
    assert calls.names()[0] == "process_init"


def test_process_init_runs_in_every_processes_pool_child_before_its_first_task(
    child_app: Petiole, tmp_path: Path
) -> None:
    whoami = child_app.tasks["hooks.whoami"]
    # One task per child: each task runs in a new child, which must have run the hook.
    with start_worker(child_app, pool="processes", concurrency=1, max_tasks_per_child=1):
        ran = [whoami.delay().get(timeout=30) for _ in range(2)]
    (first, first_mark), (second, second_mark) = ran
    assert first != second
    assert first_mark == second_mark == "processes hooks-in-children"
    # ...despite another plugin's implementation raising; never in the worker itself.
    assert not (tmp_path / "marks" / f"init-{os.getpid()}").exists()


def test_each_processes_pool_child_lets_a_plugin_set_up_its_logging(
    child_app: Petiole, tmp_path: Path
) -> None:
    with start_worker(child_app, pool="processes", concurrency=1):
        pid, _ = child_app.tasks["hooks.whoami"].delay().get(timeout=30)
    level = (tmp_path / "marks" / f"logging-{pid}").read_text()
    assert level == logging.getLevelName(logging.getLogger().getEffectiveLevel())


# -- petiole_setup_logging ---------------------------------------------------------------


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, put back as it was after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


class TakesLogging:
    def __init__(self, answer: bool | None) -> None:
        self.answer = answer
        self.seen: list[tuple[str, str | None]] = []

    @hookimpl
    def petiole_setup_logging(self, app: Petiole, loglevel: str, logfile: str | None) -> Any:
        self.seen.append((loglevel, logfile))
        return self.answer


def test_a_plugin_returning_true_from_setup_logging_replaces_petioles_logging(
    app: Petiole, root_logger: logging.Logger
) -> None:
    plugin = TakesLogging(True)
    app.register_plugin(plugin)
    root_logger.handlers.clear()
    assert hooks.setup_logging(app, "warning", logfile="/var/log/w.log") is True
    assert plugin.seen == [("WARNING", "/var/log/w.log")]
    assert root_logger.handlers == []


def test_without_a_plugin_taking_it_petiole_sets_up_logging_itself(
    app: Petiole, root_logger: logging.Logger
) -> None:
    plugin = TakesLogging(None)
    app.register_plugin(plugin)
    root_logger.handlers.clear()
    assert hooks.setup_logging(app, logging.ERROR) is False
    assert plugin.seen == [("ERROR", None)]
    assert root_logger.level == logging.ERROR
    [handler] = root_logger.handlers
    assert any(isinstance(f, EscapeControlCharacters) for f in handler.filters)


CLI_APP = """
from petiole import Petiole, hookimpl

app = Petiole("cli-logging", broker="memory://cli-logging", backend="memory://cli-logging")
SEEN = []


class OwnLogging:
    @hookimpl
    def petiole_setup_logging(self, app, loglevel, logfile):
        SEEN.append(loglevel)
        return True


app.register_plugin(OwnLogging())
"""


@pytest.mark.parametrize(
    ("arguments", "environ", "level"),
    [(["-l", "ERROR"], {}, "ERROR"), ([], {"PETIOLE_LOG_LEVEL": "warning"}, "WARNING")],
)
def test_the_cli_calls_setup_logging_once_the_app_is_loaded(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    root_logger: logging.Logger,
    arguments: list[str],
    environ: dict[str, str],
    level: str,
) -> None:
    module = f"cli_logging_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(CLI_APP))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    root_logger.handlers.clear()
    try:
        result = CliRunner().invoke(cli, ["-A", module, *arguments, "plugins"])
        assert result.exit_code == 0, result.output
        assert [level] == sys.modules[module].SEEN
    finally:
        sys.modules.pop(module, None)
    assert root_logger.handlers == []  # the plugin took logging over


# -- received, revoked, unknown, rejected ------------------------------------------------


def test_received_is_called_with_the_job_before_the_task_runs(app: Petiole, calls: Calls) -> None:
    @app.task
    def echo(x: int) -> int:
        return x

    with start_worker(app) as worker:
        result = echo.delay(5)
        assert result.get(timeout=5) == 5
    [received] = calls.of("received")
    job = received["job"]
    assert received["worker"] is worker
    assert (job.envelope.task_id, job.envelope.task_name) == (result.id, echo.name)
    assert (job.queue, job.delivery_count) == ("default", 1)
    assert calls.names()[1:] == ["received", "prerun"]


def test_revoked_is_called_for_a_task_dropped_before_it_started(app: Petiole, calls: Calls) -> None:
    @app.task
    def target() -> None: ...

    gone = target.delay()
    gone.revoke(reason="not needed")
    with start_worker(app) as worker:
        assert wait_until(lambda: bool(calls.of("revoked")), timeout_s=5)
    [revoked] = calls.of("revoked")
    assert revoked["worker"] is worker
    assert revoked["envelope"].task_id == gone.id
    assert (revoked["reason"], revoked["terminated"]) == ("not needed", False)
    assert "prerun" not in calls.names()


def test_revoked_is_called_with_terminated_for_a_running_task_the_pool_stopped(
    child_app: Petiole,
) -> None:
    calls = Calls()
    child_app.register_plugin(Recorder(calls))
    with start_worker(child_app, pool="processes", concurrency=1) as worker:
        running = child_app.tasks["hooks.block"].delay(60)
        assert wait_until(lambda: bool(worker._running), timeout_s=30)
        running.revoke(terminate=True, reason="stuck")
        assert wait_until(lambda: bool(calls.of("revoked")), timeout_s=15)
    [revoked] = calls.of("revoked")
    assert revoked["envelope"].task_id == running.id
    assert (revoked["reason"], revoked["terminated"]) == ("stuck", True)


def test_unknown_is_called_for_a_task_this_worker_does_not_register(
    app: Petiole, calls: Calls
) -> None:
    sent = app.send_task("nowhere.to.be.found")
    with start_worker(app) as worker:
        assert wait_until(lambda: bool(calls.of("unknown")), timeout_s=5)
    [unknown] = calls.of("unknown")
    assert unknown["worker"] is worker
    assert unknown["envelope"].task_id == sent.id
    assert (unknown["envelope"].task_name, unknown["queue"]) == ("nowhere.to.be.found", "default")
    assert calls.of("rejected") == []


def _publish(
    app: Petiole,
    *,
    content_type: str = "application/json",
    content_encoding: str = "identity",
    **headers: Any,
) -> str:
    task_id = str(uuid.uuid4())
    fields = {"protocol": PROTOCOL_VERSION, "id": task_id, "task": "t", "sent_at": time.time()}
    envelope = Envelope({**fields, **headers}, b"[[], {}]", content_type, content_encoding)
    app.transport.publish("default", envelope.to_bytes(), message_id=task_id)
    return task_id


def _malformed(app: Petiole) -> str | None:
    app.transport.publish("default", b"not a petiole message")
    return None


def _not_accepted(app: Petiole) -> str | None:
    return _publish(app, content_type="application/x-python-pickle")


def _no_codec_here(app: Petiole) -> str | None:
    return _publish(app, content_encoding="no-such-codec")


def _unsigned(app: Petiole) -> str | None:
    app.configure(require_signature=True)
    _publish(app)
    return None


def _undecodable(app: Petiole) -> str | None:
    task_id = str(uuid.uuid4())
    fields = {"protocol": PROTOCOL_VERSION, "id": task_id, "task": "t", "sent_at": time.time()}
    envelope = Envelope(fields, b"[[], {", "application/json")
    app.transport.publish("default", envelope.to_bytes(), message_id=task_id)
    return task_id


def _expired(app: Petiole) -> str | None:
    return _publish(app, expires=time.time() - 60)


def _delivered_too_often(app: Petiole) -> str | None:
    app.configure(max_deliveries=1)
    task_id = _publish(app)
    [delivery] = app.transport.reserve(["default"], max_messages=1, wait_s=1, lease_s=30)
    app.transport.nack(delivery, requeue=True)
    return task_id  # well formed: the envelope is read once it is refused


@pytest.mark.parametrize(
    ("cause", "send", "reason"),
    [
        ("malformed", _malformed, "malformed message"),
        ("content_type", _not_accepted, "is not accepted"),
        ("content_encoding", _no_codec_here, "'no-such-codec' cannot be decoded here"),
        ("signature", _unsigned, "refused, not verified"),
        ("expired", _expired, "expired at"),
        ("undecodable", _undecodable, "undecodable body"),
        ("max_deliveries", _delivered_too_often, "delivered 2 times"),
    ],
)
def test_rejected_is_called_with_the_cause_and_reason_of_a_refused_message(
    app: Petiole, calls: Calls, cause: str, send: Any, reason: str
) -> None:
    @app.task(name="t")
    def t() -> None: ...

    task_id = send(app)
    with start_worker(app) as worker:
        assert wait_until(lambda: bool(calls.of("rejected")), timeout_s=5)
    [rejected] = calls.of("rejected")
    assert rejected["worker"] is worker
    assert (rejected["queue"], rejected["cause"]) == ("default", cause)
    assert reason in rejected["reason"]
    envelope = rejected["envelope"]
    assert (envelope.task_id if envelope is not None else None) == task_id
    assert "prerun" not in calls.names()


# -- a hook that raises ------------------------------------------------------------------


class Raises:
    @hookimpl
    def petiole_task_received(self, worker: Worker, job: Job) -> None:
        raise RuntimeError("plugin bug")


def test_a_hook_that_raises_is_logged_and_the_worker_and_other_plugins_go_on(
    app: Petiole, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    app.register_plugin(Raises(), name="raises")

    @app.task
    def echo(x: int) -> int:
        return x

    with caplog.at_level(logging.ERROR, logger="petiole.worker"), start_worker(app):
        assert [echo.delay(i).get(timeout=5) for i in range(3)] == [0, 1, 2]
    assert len(calls.of("received")) == 3
    logged = [r.getMessage() for r in caplog.records if "petiole_task_received" in r.getMessage()]
    assert len(logged) == 3
    assert "plugin 'raises'" in logged[0]
    assert "RuntimeError: plugin bug" in logged[0]


def test_a_hook_no_plugin_implements_is_resolved_to_none(app: Petiole) -> None:
    assert hooks.guarded(app.plugins.hook.petiole_task_received) is None
