"""The `petiole` command line, driven through click's runner against a real SQLite file."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from petiole import Petiole
from petiole.backend import ResultRecord
from petiole.cli import cli
from petiole.plugins import KNOWN_PROVIDERS
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker

E2E = Path(__file__).parent / "e2e"


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    for name in ("PETIOLE_BROKER_URL", "PETIOLE_BACKEND_URL"):
        monkeypatch.setenv(name, url)
    monkeypatch.syspath_prepend(str(E2E))
    monkeypatch.chdir(tmp_path)
    yield url
    sys.modules.pop("e2e_app", None)


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def run_quietly(*args: str) -> Result:
    """``run`` whose errors end the command (exit 1), as on a terminal."""
    return CliRunner().invoke(cli, list(args))


def test_help_explains_every_subcommand() -> None:
    out = run("--help").output
    for name in ("worker", "call", "result", "purge", "plugins", "dlq"):
        assert name in out
    worker_help = run("worker", "--help").output
    assert "--concurrency" in worker_help
    assert "SIGTERM" in worker_help
    assert "-A, --app" in worker_help


def test_a_celery_subcommand_petiole_lacks_says_what_to_use_instead() -> None:
    for args, says in (
        (["inspect", "active"], "petiole result ID"),
        (["beat"], "from cron or a systemd timer"),
        (["multi", "start", "w1"], "--workers N"),
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert f"No such command '{args[0]}' (Celery's): " in result.output
        assert says in result.output
    other = CliRunner().invoke(cli, ["no-such-thing"])
    assert "No such command 'no-such-thing'." in other.output


def test_plugins_lists_the_builtins_with_version_and_components() -> None:
    out = run("plugins").output
    assert "builtins  (petiole 0.1.0)  [loaded]" in out
    assert "transports: memory, sqlite" in out
    assert "serializers: json, pickle" in out
    assert "pools: asyncio, prefork, processes, solo, threads" in out
    assert "codecs: bzip2, identity, lzma, zlib" in out
    assert "signers: hmac-sha256" in out


def test_app_option_is_accepted_before_and_after_the_subcommand(url: str) -> None:
    for args in (("-A", "e2e_app", "call", "e2e.square"), ("call", "-A", "e2e_app", "e2e.square")):
        result = run(*args, "--args", "[3]")
        assert result.exit_code == 0, result.output
    app = Petiole("check", broker=url, backend=url)
    assert app.transport.size("default") == 2


def test_call_checks_the_arguments_of_a_task_the_app_registers(url: str) -> None:
    refused = CliRunner().invoke(cli, ["-A", "e2e_app", "call", "e2e.square", "--args", "[1, 2]"])
    assert refused.exit_code == 2
    assert "e2e.square(x): too many positional arguments" in refused.output
    unknown_here = run("-A", "e2e_app", "call", "elsewhere.task", "--args", "[1, 2]")
    assert unknown_here.exit_code == 0  # not registered here: sent as it is
    app = Petiole("check", broker=url, backend=url)
    assert app.transport.size("default") == 1


def test_call_with_wait_prints_the_result_as_json(url: str) -> None:
    from e2e_app import app

    with start_worker(app):
        result = run("call", "e2e.square", "--args", "[7]", "--wait", "--timeout", "10")
    payload = json.loads(result.output)
    assert payload["state"] == "SUCCESS"
    assert payload["result"] == 49


def test_call_with_wait_exits_1_when_the_task_fails(url: str) -> None:
    """A cron job running `petiole call --wait` must see a failed task."""
    from e2e_app import app

    with start_worker(app):
        result = CliRunner().invoke(
            cli, ["call", "e2e.square", "--args", '["x"]', "--wait", "--timeout", "10"]
        )
    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    assert payload["state"] == "FAILURE"
    assert payload["error"].startswith("TypeError")
    waited = CliRunner().invoke(cli, ["result", payload["id"], "--wait", "--timeout", "10"])
    assert waited.exit_code == 1
    assert json.loads(waited.output)["state"] == "FAILURE"
    shown = CliRunner().invoke(cli, ["result", payload["id"]])  # a look, not a wait
    assert shown.exit_code == 0
    assert json.loads(shown.output)["state"] == "FAILURE"


def test_result_of_a_groups_id_prints_its_members(url: str) -> None:
    from e2e_app import app

    from petiole import group

    sent = group(app.signature("e2e.square", (n,)) for n in (2, 3)).apply_async()
    looked = json.loads(run("result", sent.id).output)
    assert (looked["group"], looked["ready"]) == (sent.id, False)
    assert [m["id"] for m in looked["members"]] == sent.ids
    with start_worker(app):
        waited = run("result", sent.id, "--wait", "--timeout", "10")
    assert waited.exit_code == 0, waited.output
    payload = json.loads(waited.output)
    assert payload["ready"]
    assert [m["state"] for m in payload["members"]] == ["SUCCESS", "SUCCESS"]


def test_a_wait_with_no_worker_says_on_stderr_why_the_task_is_not_done(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`petiole call --wait` with no --timeout would otherwise sit silent for ever."""
    from petiole.cli import inspect_cmds

    monkeypatch.setattr(inspect_cmds, "FIRST_NOTE_S", 0.2)
    monkeypatch.setattr(inspect_cmds, "NOTE_EVERY_S", 0.3)
    result = CliRunner().invoke(
        cli, ["call", "e2e.square", "--args", "[2]", "--wait", "--timeout", "1"]
    )
    assert result.exit_code == 1  # no worker: the timeout still ends the wait, as an error
    notes = [line for line in result.stderr.splitlines() if line.startswith("still PENDING after")]
    assert len(notes) >= 2  # the first note, then the next ones
    assert "is a worker running and consuming default?" in notes[0]
    assert result.stdout == ""  # stdout is kept for the JSON outcome
    assert "not ready after 1.0 s: task e2e.square" in result.stderr  # the whole wait


def test_a_wait_for_a_dead_lettered_task_ends_with_its_own_exit_status(url: str) -> None:
    """It will not run until requeued: the worker records why, and the wait ends."""
    from e2e_app import app

    from petiole.cli import inspect_cmds

    with start_worker(app) as worker:
        result = CliRunner().invoke(cli, ["call", "not.registered.anywhere", "--wait"])
    assert worker.counts["dead_lettered"] == 1
    assert result.exit_code == inspect_cmds.DEAD_LETTERED_EXIT == 3
    assert "its message was dead-lettered: it runs once requeued" in result.stderr
    payload = json.loads(result.stdout)
    assert payload["state"] == "FAILURE"
    assert payload["error"].startswith("MessageDeadLettered: message dead-lettered, the task")
    assert "'not.registered.anywhere' is not registered" in payload["error"]


def test_call_rejects_arguments_that_are_not_a_json_list(url: str) -> None:
    result = CliRunner().invoke(cli, ["call", "x", "--args", "{}"])
    assert result.exit_code == 2
    assert "--args must be a JSON list" in result.output


def test_result_reports_pending_for_an_unknown_id(url: str) -> None:
    shown = json.loads(run("result", "nope").output)
    assert shown["id"] == "nope"
    assert shown["state"] == "PENDING"
    assert "its message is not on broker" in shown["why"]


def test_purge_asks_first_then_deletes(url: str) -> None:
    run("call", "anything")
    assert run("purge", input="n\n").exit_code == 1
    out = run("purge", "-f").output
    assert "default: purged 1 message(s)" in out


def test_dlq_list_requeue_and_purge(url: str) -> None:
    from e2e_app import app

    app.send_task("not.here")
    with start_worker(app) as worker:
        app.tasks["e2e.square"].delay(1).get(timeout=10)
    assert worker.counts["dead_lettered"] == 1
    listed = run("dlq", "list").output
    assert "not.here" in listed
    assert "is not registered" in listed
    [entry] = [json.loads(line) for line in run("dlq", "list", "--json").output.splitlines()]
    assert entry["task"] == "not.here"
    assert listed.startswith("dead letter id  dead at (UTC)  delivered  task task id")
    assert "requeued 1" in run("dlq", "requeue", entry["dead_letter_id"]).output
    assert app.transport.size("default") == 1
    with start_worker(app) as again:
        assert wait_until(lambda: again.counts["dead_lettered"] == 1, timeout_s=10)
    wrong = run_quietly("dlq", "requeue", "999", entry["task_id"])
    assert wrong.exit_code == 1
    assert "no dead letter '999' in 'default' (nothing was requeued)" in wrong.output
    assert "requeued 1" in run("dlq", "requeue", entry["task_id"]).output  # by its task id
    with start_worker(app) as third:
        assert wait_until(lambda: third.counts["dead_lettered"] == 1, timeout_s=10)
    assert "deleted 1" in run("dlq", "purge", "-f").output


def test_unknown_broker_scheme_is_a_clear_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every broker with a known provider is installed here: stand one in.
    monkeypatch.setitem(KNOWN_PROVIDERS, ("transport", "nosuchbroker"), "petiole-nosuchbroker")
    monkeypatch.setenv("PETIOLE_BROKER_URL", "nosuchbroker://")
    result = CliRunner().invoke(cli, ["purge", "-f"])
    assert result.exit_code == 1
    assert "no transport named 'nosuchbroker'" in result.output
    assert "install it with: pip install " in result.output
    assert "petiole-nosuchbroker" in result.output


def test_bad_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PETIOLE_LEASE_S", "soon")
    result = CliRunner().invoke(cli, ["purge", "-f"])
    assert result.exit_code == 1
    assert "PETIOLE_LEASE_S" in result.output


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_worker_whose_app_registers_no_tasks_refuses_to_start(
    url: str, tmp_path: Path, workers: str
) -> None:
    (tmp_path / "no_tasks_here.py").write_text("from petiole import Petiole\napp = Petiole('x')\n")
    app = Petiole("check", broker=url, backend=url)
    waiting = app.send_task("proj.tasks.add", [1, 2])
    result = run_worker("--workers", workers, "-A", "no_tasks_here")
    assert result.exit_code == 1
    assert "registers no tasks, so this worker would dead-letter every message" in result.output
    assert app.transport.size("default") == 1  # left where it was, not dead-lettered
    assert waiting.state == "PENDING"


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_worker_refused_for_want_of_tasks_leaves_no_database_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """Started without -A in an empty directory (the SQLite default), it made
    petiole.db before refusing."""
    monkeypatch.chdir(tmp_path)
    result = run_worker("--workers", workers)
    assert result.exit_code == 1, result.output
    assert "registers no tasks" in result.output
    assert list(tmp_path.iterdir()) == []


def run_worker(*args: str) -> Result:
    return run_quietly("worker", *args)


def test_worker_takes_workers_0_as_the_worker_processes_setting_does(url: str) -> None:
    result = run_worker("--workers", "0", "-A", "no_such_module_xyz")
    assert result.exit_code == 1, result.output  # past the options, at the app
    assert "no_such_module_xyz" in result.output


def test_revoke_marks_tasks_revoked(url: str) -> None:
    app = Petiole("check", broker=url, backend=url)
    first, second = app.send_task("a"), app.send_task("b")
    out = run("revoke", first.id, second.id, "--reason", "cancelled by ops").output
    assert "revoked 2 task(s)" in out
    assert first.state == second.state == "REVOKED"


def test_revoke_keeps_the_result_of_a_finished_task_and_says_so(url: str) -> None:
    app = Petiole("check", broker=url, backend=url)
    done, waiting = app.send_task("a"), app.send_task("b")
    serializer = app.result_serializer
    app.store_result(
        ResultRecord(done.id, "SUCCESS", serializer.dumps(5), serializer.content_type, None, 1.0)
    )
    result = run("revoke", done.id, waiting.id)
    assert f"{done.id} had finished (SUCCESS): its result is kept" in result.stderr
    assert result.stdout == "revoked 1 task(s)\n"
    assert (done.state, done.get(timeout=1)) == ("SUCCESS", 5)
    assert waiting.state == "REVOKED"
