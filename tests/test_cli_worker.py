"""`petiole worker`'s Celery-style flags: grouped help, flags Petiole does not have
yet, what each flag hands the worker, and running under an init system
(--pidfile, --logfile, --detach) for real, in subprocesses."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from petiole import Petiole
from petiole.cli import cli, worker_cmd
from petiole.cli.daemon import DEFAULT_PIDFILE, alive
from petiole.testing import wait_until

APP = """
import time

from petiole import Petiole

app = Petiole("cli-worker")


@app.task(name="cli.square")
def square(x):
    return x * x


@app.task(name="cli.sleep")
def sleep(seconds):
    time.sleep(seconds)
"""

STOP_TIMEOUT_S = 20


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory with an app module, ``cliworker_app``, on SQLite."""
    (tmp_path / "cliworker_app.py").write_text(textwrap.dedent(APP))
    return tmp_path


@pytest.fixture
def env(project: Path) -> dict[str, str]:
    url = f"sqlite:///{project / 'p.db'}"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PETIOLE_", "CELERY_"))}
    environ.update(PETIOLE_BROKER_URL=url, PETIOLE_BACKEND_URL=url, PYTHONPATH=str(project))
    return environ


def petiole(
    project: Path, env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "petiole", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_detached(project: Path, env: dict[str, str], pidfile: Path) -> int:
    """Start a threads-pool worker with ``--detach``; return its pid, from its pidfile."""
    args = ("worker", "-A", "cliworker_app", "-P", "threads", "--detach", "--pidfile")
    result = petiole(project, env, *args, str(pidfile))
    assert result.returncode == 0, result.stderr
    return int(pidfile.read_text())


def gone(pid: int) -> bool:
    return not alive(pid)


@pytest.fixture
def daemons() -> Iterator[list[int]]:
    """Process ids of detached workers a test started: killed if a test leaves one."""
    started: list[int] = []
    yield started
    for pid in started:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# -- help, and what Petiole does not have yet --------------------------------------------


def test_help_groups_the_options_as_celerys_worker_does() -> None:
    out = CliRunner().invoke(cli, ["worker", "--help"]).output
    sections = [
        "Worker Options:",
        "Pool Options:",
        "Queue Options:",
        "Features:",
        "Daemonization Options:",
        "Embedded Beat Options:",
        "Options:",
    ]
    at = [out.index(f"\n{section}\n") for section in sections]
    assert at == sorted(at)
    ends = [*at[1:], len(out)]
    under = {
        section: out[start:end] for section, start, end in zip(sections, at, ends, strict=True)
    }
    assert "--time-limit" in under["Pool Options:"]
    assert "--max-memory-per-child KIB" in under["Pool Options:"]
    assert "-X, --exclude-queues" in under["Queue Options:"]
    assert "--autoscale MAX,MIN" in under["Features:"]
    assert "-E, --task-events" in under["Features:"]
    assert "--pidfile" in under["Daemonization Options:"]
    assert "-D, --detach" in under["Daemonization Options:"]
    assert "-B, --beat" in under["Embedded Beat Options:"]
    assert "-A, --app" in under["Options:"]


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        ("-E", "-E/--task-events: Petiole has no task event stream yet; meanwhile"),
        ("--task-events", "no task event stream"),
        ("-B", "-B/--beat: Petiole has no periodic task scheduler (beat) yet; meanwhile"),
        ("--beat", "`petiole call TASK`"),
    ],
)
def test_flags_for_what_petiole_lacks_exit_2_with_one_line_saying_what_to_use(
    flag: str, says: str
) -> None:
    result = CliRunner().invoke(cli, ["worker", flag])
    assert result.exit_code == 2
    assert says in result.output
    assert result.output.count("\n") == 1
    assert "No such option" not in result.output


# -- what each flag hands the worker -------------------------------------------------------


class FakeWorker:
    """Stands in for Worker: records its arguments, runs nothing."""

    made: list[dict[str, Any]] = []

    def __init__(self, app: Any, **options: Any) -> None:
        self.on_exit_now: list[Any] = []
        FakeWorker.made.append(options)

    def run(self, *, ready: Any = None) -> int:
        return 0


@pytest.fixture
def fake_worker(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    FakeWorker.made = []
    monkeypatch.setattr(worker_cmd, "Worker", FakeWorker)
    # The app without -A registers no task, which the command refuses (its own test
    # in test_cli.py): these tests are about the flags only.
    monkeypatch.setattr(worker_cmd, "_require_tasks", lambda app: None)
    # One worker in this process: the prefork default would fork the test runner.
    monkeypatch.setenv("PETIOLE_WORKER_POOL", "threads")
    monkeypatch.setenv("PETIOLE_BROKER_URL", "memory://cli-worker-flags")
    monkeypatch.setenv("PETIOLE_BACKEND_URL", "memory://cli-worker-flags")
    return FakeWorker.made


def test_flags_reach_the_worker_with_celerys_units_converted(
    fake_worker: list[dict[str, Any]],
) -> None:
    args = [
        "worker",
        "--max-tasks-per-child=100",
        "--max-memory-per-child=524288",  # KiB, as Celery's flag counts
        "--time-limit=60",
        "--soft-time-limit=50",
        "--autoscale=10,3",
        "--autoscale-idle=5",
        "-Q",
        "a,b,c",
        "-X",
        "b",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    [options] = fake_worker
    assert options["max_tasks_per_child"] == 100
    assert options["max_memory_per_child_mb"] == 512
    assert (options["time_limit_s"], options["soft_time_limit_s"]) == (60, 50)
    assert (options["autoscale"], options["autoscale_idle_s"]) == ((10, 3), 5)
    assert (options["queues"], options["exclude_queues"]) == (["a", "b", "c"], ["b"])


def test_without_the_flags_the_worker_reads_its_settings(fake_worker: list[dict[str, Any]]) -> None:
    assert CliRunner().invoke(cli, ["worker"]).exit_code == 0
    [options] = fake_worker
    for name in ("max_tasks_per_child", "max_memory_per_child_mb", "time_limit_s", "autoscale"):
        assert options[name] is None


@pytest.mark.parametrize("value", ["x", "1,2,3", "4;2"])
def test_an_autoscale_that_is_not_max_min_is_a_usage_error(
    fake_worker: list[dict[str, Any]], value: str
) -> None:
    result = CliRunner().invoke(cli, ["worker", "--autoscale", value])
    assert result.exit_code == 2
    assert "expected MAX,MIN" in result.output
    assert fake_worker == []


# -- --pidfile and --logfile, in the foreground --------------------------------------------


def _start(project: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "petiole", "worker", "-A", "cliworker_app", "-P", "threads", *args],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _ready(log: Path) -> bool:
    return log.exists() and " ready: " in log.read_text(errors="replace")


def test_a_foreground_worker_logs_to_its_logfile_and_keeps_its_pidfile_while_it_runs(
    project: Path, env: dict[str, str]
) -> None:
    pidfile, log = project / "w.pid", project / "w.log"
    worker = _start(project, env, "--pidfile", str(pidfile), "--logfile", str(log))
    try:
        assert wait_until(lambda: _ready(log), timeout_s=30), worker.stderr
        assert pidfile.read_text().strip() == str(worker.pid)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(STOP_TIMEOUT_S) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    assert not pidfile.exists()
    text = log.read_text()
    assert " ready: " in text
    assert " stopped: " in text
    assert worker.stderr is not None
    assert worker.stderr.read() == b""  # all went to the log


def test_a_second_signal_stops_at_once_and_still_removes_the_pidfile(
    project: Path, env: dict[str, str]
) -> None:
    pidfile, log = project / "w.pid", project / "w.log"
    # -l INFO: the task's "received" line says when the worker has it.
    worker = _start(project, env, "--pidfile", str(pidfile), "--logfile", str(log), "-l", "INFO")
    try:
        assert wait_until(lambda: _ready(log), timeout_s=30)
        assert petiole(project, env, "call", "cli.sleep", "--args", "[60]").returncode == 0
        assert wait_until(lambda: "cli.sleep[" in log.read_text(), timeout_s=10)
        worker.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "finishing 1 running task(s)" in log.read_text(), timeout_s=10)
        worker.send_signal(signal.SIGTERM)  # the task would take a minute: stop now
        assert worker.wait(STOP_TIMEOUT_S) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    assert not pidfile.exists()


def test_a_pidfile_naming_a_live_process_is_refused(project: Path, env: dict[str, str]) -> None:
    pidfile = project / "w.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # this test's process: alive
    result = petiole(project, env, "worker", "-A", "cliworker_app", "--pidfile", str(pidfile))
    assert result.returncode == 1
    assert f"names process {os.getpid()}, which is running" in result.stderr
    assert pidfile.read_text() == f"{os.getpid()}\n"


# -- --detach, for real ----------------------------------------------------------------------


def test_detach_runs_the_worker_in_the_background_until_sigterm(
    project: Path, env: dict[str, str], daemons: list[int]
) -> None:
    pidfile, log = project / "run" / "w.pid", project / "w.log"
    pidfile.parent.mkdir()
    result = petiole(
        project,
        env,
        "worker",
        "-A",
        "cliworker_app",
        "-P",
        "threads",
        "--autoscale",
        "3,1",
        "--detach",
        "--pidfile",
        str(pidfile),
        "--logfile",
        str(log),
    )
    assert result.returncode == 0, result.stderr
    # The command returned once the worker was ready: its pidfile is there already.
    pid = int(pidfile.read_text())
    daemons.append(pid)
    assert alive(pid)
    assert f"running in the background as process {pid}" in result.stderr
    assert " ready: " in log.read_text()
    assert "pool=threadsx1 (autoscale 1-3)" in log.read_text()
    assert os.getsid(pid) != os.getsid(0)  # a session of its own: no terminal to lose
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: gone(pid), timeout_s=STOP_TIMEOUT_S)
    assert not pidfile.exists()
    assert " stopped: " in log.read_text()


def test_detach_without_a_pidfile_uses_one_in_the_working_directory_and_says_so(
    project: Path, env: dict[str, str], daemons: list[int]
) -> None:
    result = petiole(project, env, "worker", "-A", "cliworker_app", "-P", "threads", "--detach")
    assert result.returncode == 0, result.stderr
    pidfile = project / DEFAULT_PIDFILE
    pid = int(pidfile.read_text())
    daemons.append(pid)
    assert f"pidfile {pidfile}" in result.stderr
    assert "output discarded (give --logfile to keep it)" in result.stderr
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: gone(pid) and not pidfile.exists(), timeout_s=STOP_TIMEOUT_S)


def test_detach_reports_a_worker_that_cannot_start_and_exits_1(
    project: Path, env: dict[str, str]
) -> None:
    pidfile = project / "w.pid"
    result = petiole(
        project, env, "worker", "-A", "no_such_module", "--detach", "--pidfile", str(pidfile)
    )
    assert result.returncode == 1
    assert "cannot import the app module 'no_such_module'" in result.stderr
    assert wait_until(lambda: not pidfile.exists(), timeout_s=10)


def test_detach_refuses_a_pidfile_naming_a_live_process_before_detaching(
    project: Path, env: dict[str, str]
) -> None:
    pidfile = project / "w.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    args = ("worker", "-A", "cliworker_app", "--detach", "--pidfile", str(pidfile))
    result = petiole(project, env, *args)
    assert result.returncode == 1
    assert "which is running" in result.stderr
    assert "running in the background" not in result.stderr


def test_detach_replaces_a_stale_pidfile(
    project: Path, env: dict[str, str], daemons: list[int]
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pidfile = project / "w.pid"
    pidfile.write_text(f"{dead.pid}\n")
    pid = start_detached(project, env, pidfile)
    daemons.append(pid)
    assert pid != dead.pid
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: gone(pid), timeout_s=STOP_TIMEOUT_S)


def test_detached_worker_runs_tasks(project: Path, env: dict[str, str], daemons: list[int]) -> None:
    pidfile = project / "w.pid"
    pid = start_detached(project, env, pidfile)
    daemons.append(pid)
    call = petiole(project, env, "call", "cli.square", "--args", "[7]", "--wait", "--timeout", "20")
    assert call.returncode == 0, call.stderr
    assert '"result": 49' in call.stdout
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: gone(pid), timeout_s=STOP_TIMEOUT_S)


# -- the sample systemd unit ---------------------------------------------------------------

UNIT = Path(__file__).resolve().parents[1] / "docs" / "deploy" / "petiole-worker.service"


def test_the_sample_systemd_unit_starts_petiole_worker_with_flags_it_has() -> None:
    commands = [
        line.lstrip("#").partition("=")[2]
        for line in UNIT.read_text().splitlines()
        if line.lstrip("#").startswith("ExecStart=")
    ]
    assert len(commands) == 2  # Type=simple, and the Type=forking alternative
    for command in commands:
        program, subcommand, *args = shlex.split(command)
        assert (Path(program).name, subcommand) == ("petiole", "worker")
        # Parsing validates every flag and value without starting anything.
        worker_cmd.worker.make_context("worker", args)


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        ("--statedb", "`--statedb` has no Petiole equivalent: revocations live in the"),
        ("-S", "`-S` (Celery's `--statedb`) has no Petiole equivalent"),
        ("--disable-prefetch", "is spelled `--prefetch-multiplier` in Petiole"),
    ],
)
def test_celery_flags_petiole_spells_otherwise_or_lacks_name_what_to_do(
    flag: str, says: str
) -> None:
    result = CliRunner().invoke(cli, ["worker", flag])
    assert result.exit_code == 2
    assert says in result.output
    assert "No such option" not in result.output


def test_celery_flags_asking_for_what_petiole_does_anyway_are_accepted(
    fake_worker: list[dict[str, Any]],
) -> None:
    """Celery's optimizing guide puts these in deploy scripts: accepted, no effect."""
    flags = ["--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", "a"]
    result = CliRunner().invoke(cli, ["worker", *flags])
    assert result.exit_code == 0, result.output
    [options] = fake_worker
    assert options["queues"] == ["a"]


def test_a_flag_no_celery_worker_has_is_still_clicks_no_such_option() -> None:
    result = CliRunner().invoke(cli, ["worker", "--frobnicate"])
    assert result.exit_code == 2
    assert "No such option '--frobnicate'" in result.output


def test_a_broker_plugin_that_is_not_installed_is_one_error_line_not_a_restart_loop(
    project: Path, env: dict[str, str]
) -> None:
    """The default (prefork) checks the broker before forking its worker processes:
    each would fail the same way, at every restart."""
    env = {**env, "PETIOLE_BROKER_URL": "reddis://127.0.0.1:1/0"}
    result = petiole(project, env, "worker", "-A", "cliworker_app", timeout=30)
    assert result.returncode == 1
    assert "no transport named 'reddis' is installed" in result.stderr
    assert "Traceback" not in result.stderr
    assert "exited within" not in result.stderr
    assert result.stderr.count("reddis") <= 2, result.stderr


def _output_until_ready(project: Path, env: dict[str, str], processes: int) -> str:
    """What ``petiole worker`` (the default) writes until its ``processes`` worker
    processes are ready, then until it stopped on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "petiole", "worker", "-A", "cliworker_app"],
        cwd=project,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    stream = process.stderr
    assert stream is not None
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(stream), daemon=True)
    reader.start()
    try:
        ready = wait_until(
            lambda: sum(" ready: " in line for line in list(seen)) == processes, timeout_s=30
        )
        assert ready, seen
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(STOP_TIMEOUT_S)
        reader.join(STOP_TIMEOUT_S)
    return "".join(seen)


def test_the_supervisor_sets_the_sqlite_file_up_before_its_processes_start(
    project: Path, env: dict[str, str]
) -> None:
    """Two worker processes creating a fresh file's tables at once made the loser
    warn of a lock held 'longer than busy_timeout_ms', on a new user's first run
    (about one start in twenty here)."""
    for attempt in range(5):
        url = f"sqlite:///{project / f'fresh{attempt}.db'}"
        fresh = {**env, "PETIOLE_BROKER_URL": url, "PETIOLE_BACKEND_URL": url}
        output = _output_until_ready(project, fresh, processes=2)
        assert "database is locked" not in output, output


def test_a_task_module_that_fails_to_import_is_one_error_line_not_a_restart_loop(
    project: Path, env: dict[str, str]
) -> None:
    (project / "broken_tasks.py").write_text("raise RuntimeError('broken on purpose')\n")
    env = {**env, "PETIOLE_IMPORTS": "broken_tasks"}
    result = petiole(project, env, "worker", "-A", "cliworker_app", timeout=30)
    assert result.returncode == 1
    assert "imports: cannot import 'broken_tasks'" in result.stderr
    assert "broken on purpose" in result.stderr
    assert "exited within" not in result.stderr


def test_the_processes_pool_s_children_import_the_include_setting_s_modules(
    project: Path, env: dict[str, str]
) -> None:
    """The task a module of `include` defines runs in a `-P processes` child (the
    child, spawned, imports the modules itself), not dead-lettered as unknown."""
    (project / "extra_tasks.py").write_text(
        "from cliworker_app import app\n\n@app.task(name='extra.ping')\ndef ping():\n"
        "    return 'pong'\n"
    )
    env = {**env, "PETIOLE_INCLUDE": "extra_tasks"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "petiole", "worker", "-A", "cliworker_app", "-P", "processes"],
        cwd=project,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = env["PETIOLE_BROKER_URL"]
    app = Petiole("sender", broker=url, backend=url, config_file=os.devnull)
    try:
        assert app.send_task("extra.ping").get(timeout=30) == "pong"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(STOP_TIMEOUT_S)
        app.close()
