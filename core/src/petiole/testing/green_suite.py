"""Suites for green-thread pools (:class:`petiole.pools.green.GreenPool`): gevent,
eventlet, or a library of your own.

Two suites, because a green pool needs a monkey-patched process and a test run
must never patch its own (every other test shares it):

:class:`GreenPoolSuite`
    The pool conformance suite plus what a green pool adds: hundreds of tasks
    waiting side by side, soft and hard time limits as timers, revoke with
    ``terminate``. It runs in a patched child process: put the subclass in a
    file pytest does not collect (``patched/suite_mylib.py``), and from a
    collected test call :func:`run_patched_suite` with the module that patches.

:class:`GreenWorkerSuite`
    The plugin's own command (``python -m petiole_mylib worker -c 200``) as a
    worker process against a real broker, from this process: throughput of
    I/O-bound tasks, SIGTERM, a second SIGTERM. The subclass names a
    ``broker_server`` class (results go to the same URL), or gives a
    ``broker_url`` fixture.

:class:`GreenPluginSuite`
    The plugin as Petiole loads it, in fresh interpreters: registered without
    importing the library, refusing an unpatched process, warning when patched late.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pytest

from petiole import Petiole, states
from petiole.errors import SoftTimeLimitExceeded
from petiole.execution import TaskRunner
from petiole.pools.base import ACK, TIME_LIMIT, Job, Pool
from petiole.pools.green import GreenPool
from petiole.testing import green_app
from petiole.testing._helpers import wait_until
from petiole.testing.pool_suite import Outcomes, PoolSuite, make_job

_CHILD_TIMEOUT_S = 120


def run_patched_suite(patch_module: str, suite: Path) -> None:
    """Run the pytest file ``suite`` in a child process that calls
    ``patch_module.patch()`` before importing anything else; fail with its report.
    The child's green_app keeps its broker and results in memory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETIOLE_")}
    env.update(
        PETIOLE_CONFIG=os.devnull,
        PETIOLE_BROKER_URL="memory://green-tests",
        PETIOLE_BACKEND_URL="memory://green-tests",
    )
    bootstrap = (
        f"import sys; import {patch_module}; {patch_module}.patch(); "
        "import pytest; sys.exit(pytest.main(sys.argv[1:]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", bootstrap, str(suite), "-q", "-p", "no:cacheprovider"],
        env=env,
        capture_output=True,
        text=True,
        timeout=_CHILD_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert " passed" in run.stdout


def _job(task: str, *args: Any, soft_s: float | None = None, hard_s: float | None = None) -> Job:
    return dataclasses.replace(make_job(task, *args), soft_time_limit_s=soft_s, time_limit_s=hard_s)


class GreenPoolSuite(PoolSuite):
    """Subclass with ``pool_class`` set; runs in a patched process only."""

    pool_class: ClassVar[type[GreenPool]]
    can_interrupt = True  # a green thread can be killed
    #: Jobs the side-by-side tests run at once, each waiting 0.2 s.
    side_by_side: ClassVar[int] = 200

    @pytest.fixture
    def pool(self) -> Pool:
        return self.pool_class(20)

    @pytest.fixture
    def green_pool(self) -> Iterator[GreenPool]:
        missing = self.pool_class.library.missing_patches()
        assert not missing, f"run this suite with run_patched_suite: not patched: {missing}"
        pool = self.pool_class(self.side_by_side)
        pool.start(TaskRunner(green_app.app, hostname="green-tests"))
        yield pool
        pool.terminate()

    def run_all(
        self, pool: GreenPool, jobs: list[Job], timeout_s: float = 20
    ) -> tuple[Outcomes, float]:
        outcomes = Outcomes()
        started = time.monotonic()
        for each in jobs:
            pool.submit(each, outcomes)
        outcomes.wait_for(len(jobs), timeout_s=timeout_s)
        return outcomes, time.monotonic() - started

    def result_of(self, job: Job) -> Any:
        return green_app.app.AsyncResult(job.envelope.task_id).get(timeout=5, propagate=False)

    def test_tasks_blocked_in_sleep_run_side_by_side(self, green_pool: GreenPool) -> None:
        jobs = [_job("green_tests.sleep", i, 0.2) for i in range(self.side_by_side)]
        outcomes, elapsed_s = self.run_all(green_pool, jobs)
        assert [o.state for _, o in outcomes.calls] == ["SUCCESS"] * len(jobs)
        assert elapsed_s < 3.0  # one after the other: 0.2 s each

    def test_tasks_waiting_on_sockets_run_side_by_side(self, green_pool: GreenPool) -> None:
        jobs = [_job("green_tests.wait_on_socket", 0.2) for _ in range(self.side_by_side)]
        outcomes, elapsed_s = self.run_all(green_pool, jobs)
        assert [o.state for _, o in outcomes.calls] == ["SUCCESS"] * len(jobs)
        assert {self.result_of(each) for each in jobs} == {"timed out"}
        assert elapsed_s < 3.0

    def test_soft_time_limit_is_raised_inside_the_task_which_can_clean_up(
        self, green_pool: GreenPool
    ) -> None:
        limited = _job("green_tests.clean_up_on_soft_limit", 30, soft_s=0.2)
        outcomes, elapsed_s = self.run_all(green_pool, [limited])
        assert [o.state for o in outcomes.of(limited)] == ["SUCCESS"]
        assert self.result_of(limited) == "cleaned up"
        assert elapsed_s < 3.0

    def test_an_uncaught_soft_time_limit_fails_only_its_own_task(
        self, green_pool: GreenPool
    ) -> None:
        limited = _job("green_tests.sleep", 1, 30, soft_s=0.2)
        other = _job("green_tests.sleep", 2, 0.5)
        outcomes, elapsed_s = self.run_all(green_pool, [limited, other])
        assert [o.state for o in outcomes.of(limited)] == ["FAILURE"]
        assert isinstance(self.result_of(limited), SoftTimeLimitExceeded)
        assert self.result_of(other) == 2
        assert elapsed_s < 3.0

    def test_hard_time_limit_stops_a_task_that_ignores_the_soft_one(
        self, green_pool: GreenPool
    ) -> None:
        stubborn = _job("green_tests.ignore_soft_limit", 30, soft_s=0.1, hard_s=0.4)
        outcomes, elapsed_s = self.run_all(green_pool, [stubborn])
        [outcome] = outcomes.of(stubborn)
        assert outcome.kind == TIME_LIMIT
        assert "0.4 s" in outcome.reason
        assert self.pool_class.library.unit in outcome.reason
        assert elapsed_s < 3.0

    def test_cancel_stops_a_running_task_and_reports_it_revoked(
        self, green_pool: GreenPool
    ) -> None:
        running = _job("green_tests.sleep", 1, 30)
        outcomes = Outcomes()
        green_pool.submit(running, outcomes)
        library = self.pool_class.library
        while running.receipt not in green_pool._begun:  # yield until it has begun
            library.sleep(0.01)
        assert green_pool.cancel(running.receipt) is True
        [(_, outcome)] = outcomes.wait_for(1, timeout_s=5)
        assert (outcome.kind, outcome.state) == (ACK, "REVOKED")
        assert green_pool.cancel(running.receipt) is False  # no longer running

    def test_cancel_leaves_a_job_that_has_not_begun_to_run_and_report(
        self, green_pool: GreenPool
    ) -> None:
        queued = _job("green_tests.sleep", 1, 0.1)
        outcomes = Outcomes()
        green_pool.submit(queued, outcomes)
        assert green_pool.cancel(queued.receipt) is False  # we have not yielded: not begun
        outcomes.wait_for(1, timeout_s=5)
        assert [o.state for o in outcomes.of(queued)] == ["SUCCESS"]


class BrokerServer(Protocol):
    """A real broker for :class:`GreenWorkerSuite` (``petiole_redis.testing.RedisServer``)."""

    def __init__(self, directory: Path) -> None:
        """Keeps its data in ``directory``; not started yet."""

    @property
    def url(self) -> str: ...

    def start(self) -> Any: ...

    def stop(self) -> None: ...


class _Workers:
    """Worker processes of the plugin's command, each in its own process group."""

    def __init__(self, suite: GreenWorkerSuite, broker_url: str, folder: Path) -> None:
        self.suite = suite
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PETIOLE_")}
        # STARTED states let the tests see when tasks are running, instead of sleeping.
        self.env.update(
            PETIOLE_BROKER_URL=broker_url,
            PETIOLE_BACKEND_URL=broker_url,
            PETIOLE_TRACK_STARTED="true",
        )
        self.folder = folder
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, *, plain_petiole: bool = False) -> tuple[subprocess.Popen[bytes], Path]:
        """Start a worker and wait until it is consuming; return it and its log.

        With ``plain_petiole``, the core's own command with ``-P``, not the plugin's."""
        log_path = self.folder / f"worker{len(self.procs)}.log"
        if plain_petiole:
            argv = [sys.executable, "-m", "petiole", "worker", "-P", self.suite.pool_name]
        else:
            argv = [sys.executable, "-m", self.suite.command_module, "worker"]
        argv += ["-A", "petiole.testing.green_app", "-c", str(self.suite.concurrency)]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=self.folder,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append((proc, log_path))
        assert wait_until(
            lambda: " ready: " in log_path.read_text(errors="replace") or proc.poll() is not None,
            timeout_s=60,
        ), log_path.read_text(errors="replace")
        assert proc.poll() is None, log_path.read_text(errors="replace")
        return proc, log_path

    def kill_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class GreenWorkerSuite:
    """Subclass with the attributes below, and ``broker_server`` or a ``broker_url`` fixture."""

    #: Run as ``python -m <command_module> worker``: the plugin's patched command.
    command_module: ClassVar[str]
    #: The pool's name, as the worker's ready line shows it.
    pool_name: ClassVar[str]
    #: How ``socket.socket.__module__`` starts once the library patched it.
    patched_socket_module: ClassVar[str]
    concurrency: ClassVar[int] = 200
    #: The broker the workers use, made with a directory for its data; started
    #: once for the class and stopped after it.
    broker_server: ClassVar[type[BrokerServer]]

    @pytest.fixture(scope="class")
    @classmethod
    def broker_url(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
        if not hasattr(cls, "broker_server"):
            raise NotImplementedError("give the suite a broker_server, or a broker_url fixture")
        server = cls.broker_server(tmp_path_factory.mktemp("broker"))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()

    @pytest.fixture
    def workers(self, broker_url: str, tmp_path: Path) -> Iterator[_Workers]:
        started = _Workers(self, broker_url, tmp_path)
        yield started
        started.kill_all()

    @pytest.fixture
    def worker(self, workers: _Workers) -> Iterator[Path]:
        """One worker, stopped by SIGTERM after the test; yields the path of its log."""
        proc, log_path = workers.start()
        yield log_path
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text(errors="replace")

    @pytest.fixture
    def producer(self, broker_url: str) -> Iterator[Petiole]:
        app = Petiole("producer", broker=broker_url, backend=broker_url)
        yield app
        app.close()

    def test_500_tasks_sleeping_0_2_s_finish_in_under_5_s_with_200_green_threads(
        self, worker: Path, producer: Petiole
    ) -> None:
        log = worker.read_text()
        assert f"pool={self.pool_name}x{self.concurrency}" in log
        assert "imported before" not in log
        # Connected before the clock starts: the figure is the worker's, not our set-up's.
        producer.transport  # noqa: B018
        producer.backend  # noqa: B018
        started = time.monotonic()
        results = [producer.send_task("green_tests.sleep", [i, 0.2]) for i in range(500)]
        found = producer.backend.wait([r.id for r in results], timeout_s=30)
        elapsed_s = time.monotonic() - started
        print(f"{self.pool_name} pool: 500 tasks x 0.2 s with -c 200 took {elapsed_s:.2f} s")
        assert len(found) == 500
        assert [r.get(timeout=5) for r in results] == list(range(500))
        assert elapsed_s < 5.0

    def test_sigterm_lets_running_tasks_finish_and_the_worker_exit_0(
        self, workers: _Workers, producer: Petiole
    ) -> None:
        proc, log_path = workers.start()
        results = [producer.send_task("green_tests.sleep", [i, 1.0]) for i in range(50)]
        # Every task has begun (a STARTED state, or already done) before the signal.
        assert wait_until(lambda: all(r.state != states.PENDING for r in results), timeout_s=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log_path.read_text(errors="replace")
        assert [r.get(timeout=1) for r in results] == list(range(50))

    def test_a_second_sigterm_stops_at_once_and_running_tasks_run_again_elsewhere(
        self, workers: _Workers, producer: Petiole
    ) -> None:
        proc, log_path = workers.start()
        results = [producer.send_task("green_tests.stall_first_delivery") for _ in range(20)]
        assert wait_until(lambda: all(r.state == states.STARTED for r in results), timeout_s=10)
        proc.send_signal(signal.SIGTERM)
        assert wait_until(
            lambda: "SIGTERM: finishing" in log_path.read_text(errors="replace"), timeout_s=10
        ), log_path.read_text(errors="replace")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0, log_path.read_text(errors="replace")
        workers.start()
        # Returned at once, not when their 30 s leases end; each ran again, on a later
        # delivery. (It may be the third: the stopping worker's last reserve, in flight
        # when the messages were returned, can take some back before it returns them too.)
        deliveries = [r.get(timeout=15) for r in results]
        assert all(count >= 2 for count in deliveries), deliveries

    def test_plain_petiole_worker_with_dash_p_runs_in_a_patched_process(
        self, workers: _Workers, producer: Petiole
    ) -> None:
        proc, log_path = workers.start(plain_petiole=True)
        where = producer.send_task("green_tests.socket_class").get(timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text(errors="replace")
        log = log_path.read_text(errors="replace")
        assert f"pool={self.pool_name}x{self.concurrency}" in log
        assert "imported before" not in log
        assert where.startswith(self.patched_socket_module)

    def test_the_worker_runs_tasks_on_the_librarys_socket(
        self, worker: Path, producer: Petiole
    ) -> None:
        where = producer.send_task("green_tests.socket_class").get(timeout=30)
        assert where.startswith(self.patched_socket_module)


def _run_python(code: str) -> Any:
    """Run ``code`` in a fresh interpreter; return the JSON it prints last."""
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.splitlines()[-1])


class GreenPluginSuite:
    """The plugin as Petiole sees it, checked in child processes so that the test
    process (shared with every other test) never imports the library.

    Subclass with ``library`` (``"gevent"``), ``package`` (``"petiole_gevent"``),
    ``pool_class`` (``"GeventPool"``) and ``command`` (``"petiole-gevent"``).
    """

    library: ClassVar[str]
    package: ClassVar[str]
    pool_class: ClassVar[str]
    command: ClassVar[str]

    def test_loading_the_plugin_registers_the_pool_without_importing_the_library(self) -> None:
        found = _run_python(
            f"""
            import json, sys
            from petiole.plugins import PluginRegistry

            registry = PluginRegistry()
            registry.load_all()
            registry.get("pool", "processes").component  # a worker on another pool
            loaded = {self.library!r} in sys.modules
            factory = registry.get("pool", {self.library!r}).component
            print(json.dumps([loaded, factory.__module__, factory.__name__]))
            """
        )
        assert found == [False, f"{self.package}.pool", self.pool_class]

    def test_the_pool_refuses_to_start_in_a_process_that_is_not_patched(self) -> None:
        message = _run_python(
            f"""
            import json
            from petiole.errors import ConfigError
            from petiole.execution import TaskRunner
            from petiole.testing.pool_app import app
            from {self.package}.pool import {self.pool_class}

            try:
                {self.pool_class}(10).start(TaskRunner(app))
            except ConfigError as exc:
                print(json.dumps(str(exc)))
            """
        )
        assert "monkey-patched" in message
        assert f"{self.command} worker" in message

    def test_patch_warns_when_petiole_was_imported_first(self) -> None:
        warned = _run_python(
            f"""
            import json, warnings
            import petiole
            from {self.package} import patch

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                patch()
            print(json.dumps([str(w.message) for w in caught if w.category is RuntimeWarning]))
            """
        )
        assert len(warned) == 1
        assert f"imported before {self.library}" in warned[0]
