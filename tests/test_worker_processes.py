"""`petiole worker --workers N`: a supervisor and N worker processes that each
reserve and run their own tasks. The supervisor's restart rules run in-process
with stand-in workers; the rest for real, as subprocesses on SQLite."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from petiole.cli.daemon import alive
from petiole.testing import wait_until
from petiole.worker import supervisor
from petiole.worker.held import HeldReporter
from petiole.worker.supervisor import (
    EXIT_REPLACE_ME,
    STOP_SIGNAL,
    Supervisor,
    expand_name,
    numbered,
)

STOP_TIMEOUT_S = 30


# -- the supervisor's rules, with stand-in workers --------------------------------------


def test_threads_ending_by_themselves_are_waited_for_before_a_fork() -> None:
    """A database client's monitor threads end soon after its close(): the supervisor
    waits for them rather than warn that it forks beside them (a user's trial)."""
    ending, staying = threading.Event(), threading.Event()
    closing = threading.Thread(target=ending.wait, name="closing-monitor", daemon=True)
    lasting = threading.Thread(target=staying.wait, name="user-thread", daemon=True)
    closing.start()
    lasting.start()
    try:
        ending.set()  # its client was closed: it ends on its own
        left = supervisor.threads_left(1.0)  # waits that long for the one that stays
        assert "user-thread" in left
        assert "closing-monitor" not in left
    finally:
        staying.set()
        lasting.join()


def test_names_expand_celerys_host_fields() -> None:
    assert expand_name("w1@%h", host="box.example.com") == "w1@box.example.com"
    assert expand_name("%n-%i.%d", host="box.example.com") == "box-%i.example.com"
    assert expand_name("w1@%h", host="box") == "w1@box"
    assert expand_name("plain") == "plain"


def test_numbered_names_replace_percent_i_or_append_the_index() -> None:
    assert numbered("w%i@box", 2) == "w2@box"
    assert numbered("mail@box", 1) == "mail@box-1"
    assert numbered(None, 1) is None  # the default name holds each process's id


def _wait_for_stop(index: int, ready: Callable[[], None]) -> int:
    """A stand-in worker: ready at once, exits 0 at the supervisor's stop signal."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {STOP_SIGNAL})
    ready()
    signal.sigwait({STOP_SIGNAL})
    return 0


def _signal_self_once(condition: Callable[[], bool]) -> threading.Thread:
    """SIGTERM this process (the supervisor) once ``condition`` holds."""

    def send() -> None:
        if wait_until(condition, timeout_s=20):
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "FIRST_PAUSE_S", 0.01)


def _deaf_to_stops(index: int, ready: Callable[[], None], held: HeldReporter | None) -> int:
    """A stand-in worker stuck in a broker call: it never answers a stop."""
    signal.signal(STOP_SIGNAL, signal.SIG_IGN)
    ready()
    while True:
        signal.pause()


def _signal_self(sup: Supervisor, times: int, after: Callable[[], bool]) -> threading.Thread:
    """SIGTERM this process (``sup``'s) ``times`` times once ``after`` holds, each
    once the one before was handled (two pending signals would count as one)."""

    def send() -> None:
        if wait_until(after, timeout_s=20):
            for sent in range(1, times + 1):
                os.kill(os.getpid(), signal.SIGTERM)
                wait_until(lambda: sup._signals_seen >= sent, timeout_s=20)  # noqa: B023

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("signals", "kill_after_s"),
    [(2, 0.3), (3, 600.0)],  # the grace of a stop at once runs out; a third signal
    ids=["after-the-grace", "on-a-third-signal"],
)
def test_worker_processes_deaf_to_a_stop_at_once_are_killed(
    monkeypatch: pytest.MonkeyPatch, signals: int, kill_after_s: float
) -> None:
    monkeypatch.setattr(supervisor, "KILL_AFTER_S", kill_after_s)
    readies: list[bool] = []
    sup = Supervisor(2, _deaf_to_stops)
    sender = _signal_self(sup, signals, after=lambda: bool(readies))
    code = sup.run(ready=lambda: readies.append(True))  # returns: not 600 s later
    sender.join()
    assert code == 128 + signal.SIGKILL


@pytest.mark.usefixtures("quick_restarts")
def test_a_worker_process_that_keeps_failing_to_start_stops_all_with_its_exit_code(
    tmp_path: Path,
) -> None:
    starts = tmp_path / "starts"

    def broken(index: int, ready: Callable[[], None], held: HeldReporter | None) -> int:
        with starts.open("a") as fh:
            fh.write(f"{index}\n")
        return 3 if index == 2 else _wait_for_stop(index, ready)

    assert Supervisor(2, broken).run() == 3
    lines = starts.read_text().split()
    assert lines.count("2") == supervisor.START_FAILURES
    assert lines.count("1") == 1  # the healthy one ran throughout, then was stopped


@pytest.mark.usefixtures("quick_restarts")
def test_a_worker_process_that_dies_is_started_again(tmp_path: Path) -> None:
    starts = tmp_path / "starts"

    def dies_once(index: int, ready: Callable[[], None], held: HeldReporter | None) -> int:
        with starts.open("a") as fh:
            fh.write(f"{index}\n")
        if starts.read_text().split().count(str(index)) == 1 and index == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return _wait_for_stop(index, ready)

    readies: list[bool] = []
    sender = _signal_self_once(lambda: starts.exists() and len(starts.read_text().split()) == 3)
    assert Supervisor(2, dies_once).run(ready=lambda: readies.append(True)) == 0
    sender.join()
    assert sorted(starts.read_text().split()) == ["1", "1", "2"]
    assert readies == [True]  # once both consumed, not again for the restart


def test_a_worker_process_that_asks_to_be_replaced_is_not_counted_as_failing(
    tmp_path: Path,
) -> None:
    starts = tmp_path / "starts"
    replacements = supervisor.START_FAILURES + 1  # more than a failing one may have

    def replaced_often(index: int, ready: Callable[[], None], held: HeldReporter | None) -> int:
        with starts.open("a") as fh:
            fh.write(f"{index}\n")
        if len(starts.read_text().split()) <= replacements:
            return EXIT_REPLACE_ME
        return _wait_for_stop(index, ready)

    sender = _signal_self_once(
        lambda: starts.exists() and len(starts.read_text().split()) == replacements + 1
    )
    assert Supervisor(1, replaced_often).run() == 0
    sender.join()


# -- for real: the command line on SQLite ----------------------------------------------

APP = """
import os
import time

from petiole import Petiole

app = Petiole("workers")


@app.task(name="workers.pid")
def pid(seconds=0.0, mark=None):
    if mark:
        with open(mark, "a") as fh:
            fh.write(f"{os.getpid()}\\n")
    time.sleep(seconds)
    return os.getpid()


@app.task(name="workers.wait_for")
def wait_for(gate):
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


@app.task(name="workers.stamp", rate_limit="5/s")
def stamp():
    return [os.getpid(), time.monotonic()]
"""


def marked(mark: Path) -> bool:
    """Whether a task has written its whole line to ``mark``: the file exists from
    the task's ``open`` on, before its pid is in it."""
    return mark.exists() and mark.read_text().endswith("\n")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "workers_app.py").write_text(textwrap.dedent(APP))
    return tmp_path


@pytest.fixture
def env(project: Path) -> dict[str, str]:
    url = f"sqlite:///{project / 'p.db'}"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PETIOLE_", "CELERY_"))}
    environ.update(
        PETIOLE_BROKER_URL=url,
        PETIOLE_BACKEND_URL=url,
        PETIOLE_LEASE_S="2",  # a killed process's message comes back quickly
        PYTHONPATH=str(project),
    )
    return environ


@pytest.fixture
def start(project: Path, env: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``start(N, *options)``: ``petiole worker --workers N *options``, once each of
    its N worker processes logged that it is ready."""
    started: list[subprocess.Popen[bytes]] = []

    def run(count: int, *args: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "petiole", "worker", "-A", "workers_app"]
        process = subprocess.Popen(
            [*command, "--workers", str(count), *args, "--logfile", str(project / "w.log")],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        ready = wait_until(lambda: log(project).count(" ready: ") == count, timeout_s=30)
        assert ready, log(project)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def stopped(worker: subprocess.Popen[bytes]) -> int:
    """The exit status of ``worker`` after a SIGTERM."""
    worker.send_signal(signal.SIGTERM)
    return worker.wait(STOP_TIMEOUT_S)


def python(project: Path, env: dict[str, str], script: str) -> list[str]:
    """The lines ``script`` printed, run as a producer in the project."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    return done.stdout.splitlines()


def log(project: Path) -> str:
    path = project / "w.log"
    return path.read_text(errors="replace") if path.exists() else ""


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with open(task / "children") as fh:
            found.update(int(child) for child in fh.read().split())
    return found


def call(project: Path, env: dict[str, str], *tasks: dict[str, Any]) -> list[object]:
    """Send ``tasks`` (each a ``pid`` task's kwargs) and return their results."""
    script = (
        "import json, workers_app\n"
        f"calls = [workers_app.pid.apply_async(kwargs=k) for k in {list(tasks)!r}]\n"
        "print(json.dumps([c.get(timeout=60) for c in calls]))\n"
    )
    [line] = python(project, env, script)
    results: list[object] = json.loads(line)
    return results


def test_each_worker_process_runs_tasks_and_sigterm_stops_them_all(
    project: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = start(2, "-P", "solo", "--prefetch-multiplier", "1", "-n", "w%i")
    assert "worker w1 ready" in log(project)
    assert "worker w2 ready" in log(project)
    processes = children(worker.pid)
    assert len(processes) == 2
    pids = call(project, env, *[{"seconds": 0.2}] * 8)
    assert set(pids) == processes  # both took work; the supervisor runs none
    assert stopped(worker) == 0
    assert log(project).count(" stopped: ") == 2


def test_a_rate_limit_holds_for_the_worker_not_for_each_of_its_processes(
    project: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """``rate_limit="5/s"``: starts at least 0.2 s apart whichever process runs them
    (a bucket per process would let two processes start two at once)."""
    worker = start(2, "-P", "solo", "--prefetch-multiplier", "1")
    script = (
        "import json, workers_app\n"
        "calls = [workers_app.stamp.delay() for _ in range(8)]\n"
        "print(json.dumps([c.get(timeout=60) for c in calls]))\n"
    )
    [line] = python(project, env, script)
    stamps = json.loads(line)
    assert {pid for pid, _ in stamps} == children(worker.pid)  # both processes ran some
    starts = sorted(at for _, at in stamps)
    gaps = [after - before for before, after in itertools.pairwise(starts)]
    assert min(gaps) > 0.15, gaps  # 0.2 s apart, less the time between take and start
    assert stopped(worker) == 0


def test_prefork_the_default_pool_runs_solo_worker_processes_with_four_places_each(
    project: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = start(2)
    assert log(project).count("pool=solox1 prefetch=16 ") == 2
    assert "prefork: 2 worker processes" in log(project)
    [ran_in] = call(project, env, {})
    assert ran_in in children(worker.pid)
    assert stopped(worker) == 0


def test_sigterm_to_every_process_of_the_service_still_lets_running_tasks_finish(
    project: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    # As an init system stopping a whole control group: every process gets SIGTERM.
    worker = start(2, "-P", "solo", "--prefetch-multiplier", "1")
    mark = project / "started"
    sender = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import workers_app, sys; "
            f"print(workers_app.pid.apply_async(kwargs={{'seconds': 2, 'mark': {str(mark)!r}}})"
            ".get(timeout=60))",
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert wait_until(lambda: marked(mark), timeout_s=20)
    for pid in [worker.pid, *children(worker.pid)]:
        os.kill(pid, signal.SIGTERM)
    assert worker.wait(STOP_TIMEOUT_S) == 0
    out, _ = sender.communicate(timeout=30)
    assert int(out) == int(mark.read_text())  # it finished where it started, once
    assert "finishing 1 running task(s)" in log(project)


def test_an_idle_group_answers_call_after_call_from_one_process(
    project: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """The processes reserve in turn (read_turn.py): one holding the turn keeps it
    while its tasks are short, instead of the two taking every other message."""
    worker = start(2)
    script = (
        "import json, workers_app\n"
        "print(json.dumps([workers_app.pid.delay().get(timeout=30) for _ in range(40)]))\n"
    )
    [line] = python(project, env, script)
    pids = json.loads(line)[10:]  # once the task is known to be short in both
    switches = sum(1 for before, after in itertools.pairwise(pids) if before != after)
    assert switches < 10, pids  # taking turns message by message would switch ~every call
    assert set(pids) <= children(worker.pid)
    assert stopped(worker) == 0


@pytest.mark.parametrize("known_short", [False, True], ids=["new-task", "short-task-turned-slow"])
def test_a_long_task_in_the_process_holding_the_turn_lets_another_process_reserve(
    project: Path,
    env: dict[str, str],
    start: Callable[..., subprocess.Popen[bytes]],
    known_short: bool,
) -> None:
    """A task not known to be short gives the turn up before it starts; a short
    one that runs long gives it up once it has run ``LONG_TASK_S``."""
    worker = start(2)
    if known_short:
        call(project, env, *[{}] * 10)
    mark = project / "runs"

    def call_long() -> None:
        # Its worker is killed at the end, the task unfinished: that call then fails.
        with contextlib.suppress(subprocess.CalledProcessError):
            call(project, env, {"seconds": 120, "mark": str(mark)})

    caller = threading.Thread(target=call_long, daemon=True)
    caller.start()
    assert wait_until(lambda: marked(mark), timeout_s=20)
    busy = int(mark.read_text())
    [other] = call(project, env, {})  # would wait two minutes behind the long task
    assert other != busy
    assert {busy, other} == children(worker.pid)


def test_tasks_reserved_behind_a_task_that_may_run_long_run_in_another_process(
    project: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Quick tasks sent with a long one do not wait for it: a warm process (its
    tasks short) that reserved them with it hands them back as it starts, a cold
    one reserved the long one alone (core/tests/test_hand_back.py has both)."""
    worker = start(2)  # prefork, the default: 16 messages per process
    call(project, env, *[{}] * 10)  # both processes know `pid` as short
    gate = project / "gate"
    script = (
        "import json, workers_app\n"
        "with workers_app.app.sending_in_batches():  # all visible at once\n"
        f"    slow = workers_app.wait_for.delay({str(gate)!r})\n"
        "    quick = [workers_app.pid.delay() for _ in range(20)]\n"
        "print(slow.id)\n"
        "print(json.dumps([q.get(timeout=20) for q in quick]))\n"
    )
    slow_id, line = python(project, env, script)  # while the long task waits for the gate
    gate.touch()
    wait = f"print(workers_app.app.AsyncResult({slow_id!r}).get(timeout=30))"
    [slow_pid] = python(project, env, f"import workers_app\n{wait}\n")
    assert int(slow_pid) not in json.loads(line)
    assert stopped(worker) == 0


def test_a_killed_worker_process_is_replaced_and_its_task_runs_again(
    project: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = start(2, "-P", "solo", "--prefetch-multiplier", "1")
    mark = project / "runs"
    result: list[object] = []
    caller = threading.Thread(
        target=lambda: result.extend(call(project, env, {"seconds": 1, "mark": str(mark)}))
    )
    caller.start()
    assert wait_until(lambda: marked(mark), timeout_s=20)
    victim = int(mark.read_text())
    os.kill(victim, signal.SIGKILL)
    caller.join(timeout=60)
    runs = [int(pid) for pid in mark.read_text().split()]
    assert runs[0] == victim
    assert len(runs) == 2  # ran again, after its lease ended
    assert result == [runs[1]]
    assert wait_until(lambda: len(children(worker.pid)) == 2, timeout_s=20)
    assert victim not in children(worker.pid)
    assert "ended unexpectedly (signal SIGKILL)" in log(project)
    assert "a task it was running once the broker takes it back" in log(project)
    assert stopped(worker) == 0


def test_a_killed_prefork_process_gives_back_its_unstarted_messages_at_once(
    project: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Not after their lease (60 s here): the supervisor returns what the dead
    process had reserved and not started; the task it was running waits for its
    lease, so a task that kills its process does not go straight to the next."""
    env["PETIOLE_LEASE_S"] = "60"
    mark = project / "runs"
    worker = start(1)  # prefork, the default pool: one worker process
    call(project, env, {}, {})  # `pid` known short: the process reserves a batch, and
    # keeps what is queued behind a call of it that turns long (a task not known short
    # would hand them back as it starts: test_hand_back.py)
    long_call = {"seconds": 120, "mark": str(mark)}
    script = (
        "import workers_app\n"
        "with workers_app.app.sending_in_batches():  # one reserve takes all six\n"
        f"    print(workers_app.pid.apply_async(kwargs={long_call!r}).id)\n"
        "    for _ in range(5):\n"
        "        print(workers_app.pid.delay().id)\n"
    )
    blocking, *quick = python(project, env, script)
    assert wait_until(lambda: marked(mark), timeout_s=20)
    victim = int(mark.read_text())
    os.kill(victim, signal.SIGKILL)
    started = time.monotonic()
    script = (
        "import json, workers_app\n"
        f"print(json.dumps([workers_app.app.AsyncResult(i).get(timeout=30) for i in {quick!r}]))\n"
    )
    [line] = python(project, env, script)
    assert time.monotonic() - started < 30  # well within the 60 s lease
    [replacement] = children(worker.pid)
    assert json.loads(line) == [replacement] * 5  # each ran once, in the fresh process
    assert "returned the messages worker process 1 held and had not started" in log(project)
    assert mark.read_text().split() == [str(victim)]  # the running one waits for its lease
    assert blocking not in line
    assert stopped(worker) == 0


def test_a_solo_task_past_its_hard_time_limit_fails_and_its_process_is_replaced(
    project: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = start(1, "-P", "solo", "--time-limit", "1")
    [first] = children(worker.pid)
    script = (
        "import workers_app\n"
        "stuck = workers_app.pid.apply_async(kwargs={'seconds': 120})\n"
        "try:\n"
        "    stuck.get(timeout=60)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, stuck.state)\n"
        "print(workers_app.pid.delay().get(timeout=60))\n"
    )
    failed, after = python(project, env, script)
    assert failed == "TimeLimitExceeded FAILURE"
    [second] = children(worker.pid)
    assert int(after) == second != first  # the next task ran in a fresh process
    assert "passed its hard time limit of 1.0 s" in log(project)
    assert "asked to be replaced" in log(project)
    assert stopped(worker) == 0


def test_a_solo_worker_process_retires_after_max_tasks_per_child(
    project: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = start(1, "-P", "solo", "--max-tasks-per-child", "2")
    first, second, third = call(project, env, {}, {}, {})
    assert first == second != third  # the third ran in the fresh process
    assert "ran 2 tasks (max_tasks_per_child)" in log(project)
    assert "asked to be replaced" in log(project)
    assert "ended unexpectedly" not in log(project)
    assert stopped(worker) == 0


def test_revoke_with_terminate_stops_a_running_solo_task_by_replacing_its_process(
    project: Path, env: dict[str, str], start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = start(1, "-P", "solo")
    [first] = children(worker.pid)
    mark = project / "started"
    script = (
        "import sys, workers_app\n"
        f"stuck = workers_app.pid.apply_async(kwargs={{'seconds': 120, 'mark': {str(mark)!r}}})\n"
        "print(stuck.id, flush=True)\n"
        "try:\n"
        "    stuck.get(timeout=60)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, stuck.state)\n"
    )
    sender = subprocess.Popen(
        [sys.executable, "-c", script], cwd=project, env=env, stdout=subprocess.PIPE, text=True
    )
    assert sender.stdout is not None
    task_id = sender.stdout.readline().strip()
    assert wait_until(lambda: marked(mark), timeout_s=20)
    revoke = subprocess.run(
        [sys.executable, "-m", "petiole", "revoke", "--terminate", task_id],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert revoke.returncode == 0
    out, _ = sender.communicate(timeout=60)
    assert out.strip() == "TaskRevoked REVOKED"
    assert wait_until(lambda: children(worker.pid) - {first} != set(), timeout_s=20)
    assert "replacing this worker process" in log(project)
    assert stopped(worker) == 0


def test_worker_processes_end_with_a_killed_supervisor(
    project: Path, start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    worker = start(2, "-P", "threads")
    processes = children(worker.pid)
    worker.kill()
    worker.wait()
    assert wait_until(lambda: not any(alive(pid) for pid in processes), timeout_s=10)


def test_a_negative_worker_processes_setting_is_refused(project: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "petiole", "worker", "-A", "workers_app"],
        cwd=project,
        env={**env, "PETIOLE_WORKER_PROCESSES": "-1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "worker_processes must be 0 (this process is the worker)" in done.stderr
    assert "not -1" in done.stderr


def test_detach_returns_once_every_worker_process_is_ready(
    project: Path, env: dict[str, str]
) -> None:
    pidfile = project / "w.pid"
    command = [sys.executable, "-m", "petiole", "worker", "-A", "workers_app", "--workers", "2"]
    options = ["-P", "solo", "--detach", "--pidfile", str(pidfile)]
    options += ["--logfile", str(project / "w.log")]
    done = subprocess.run(
        [*command, *options], cwd=project, env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    supervisor_pid = int(pidfile.read_text())
    try:
        assert log(project).count(" ready: ") == 2  # both, before the command returned
        assert len(children(supervisor_pid)) == 2
        os.kill(supervisor_pid, signal.SIGTERM)
        assert wait_until(lambda: not alive(supervisor_pid), timeout_s=STOP_TIMEOUT_S)
    finally:
        if alive(supervisor_pid):
            os.kill(supervisor_pid, signal.SIGKILL)
    assert not pidfile.exists()
    assert log(project).count(" stopped: ") == 2
