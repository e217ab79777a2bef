"""``petiole worker``: its options, grouped in ``--help`` as Celery's worker groups them."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from petiole import celery_names, discovery
from petiole.app import Petiole
from petiole.cli import daemon
from petiole.cli.context import common_options, state
from petiole.cli.help_groups import GroupedCommand, grouped_option
from petiole.errors import PetioleError
from petiole.worker import Worker
from petiole.worker.autoscale import DEFAULT_IDLE_S, Bounds
from petiole.worker.held import HeldReporter, return_to_queue
from petiole.worker.layout import layout
from petiole.worker.read_turn import ReadTurn
from petiole.worker.shared_rates import SharedRateLimits
from petiole.worker.supervisor import (
    STOP_SIGNAL,
    THREADS_END_S,
    Supervisor,
    expand_name,
    numbered,
    threads_left,
)
from petiole.worker.worker import user_task_names

logger = logging.getLogger("petiole.worker")

WORKER = "Worker Options"
POOL = "Pool Options"
QUEUES = "Queue Options"
FEATURES = "Features"
DAEMON = "Daemonization Options"
BEAT = "Embedded Beat Options"

# Celery flags for what Petiole does not have yet: refused with what to do meanwhile.
NOT_YET = {
    "task_events": "-E/--task-events: Petiole has no task event stream yet; meanwhile "
    'observe tasks with the petiole_task_* hooks (docs/worker.md, "Hooks")',
    "beat": "-B/--beat: Petiole has no periodic task scheduler (beat) yet; meanwhile "
    "start tasks on a schedule from cron or a systemd timer with `petiole call TASK`",
}
# Exit status of a command line Petiole cannot honour, as click's usage errors.
EXIT_USAGE = 2
KIB_PER_MIB = 1024


def _check_components(app: Petiole) -> None:
    """Make the broker's transport and the result store once in the supervisor, then
    close them, before any worker process is forked: a plugin not installed, a bad
    URL or a server that does not answer is said once, as one error line, instead of
    by every worker process at each of its restarts. It also leaves the broker's and
    the store's set-up (an SQLite file's tables) done before the processes start.
    Called after :func:`_require_tasks` imported the task modules: a connection one
    opened at import is closed here too, not inherited."""
    try:
        _ = app.transport
        _ = app.backend
    finally:
        app.close()  # the worker processes make their own, after the fork


def _require_tasks(app: Petiole) -> None:
    """Refuse to start a worker whose app registers no task: it would take every
    message off its queues only to dead-letter it as unregistered (a worker started
    without -A next to a real queue drains it into the dead-letter store). Asked after
    the task modules are imported (autodiscover_tasks, the imports and include
    settings: one that fails is said once, and the processes inherit them), before
    anything connects (or makes an SQLite file)."""
    discovery.finalize(app, app.settings.task_modules)
    if not user_task_names(app):
        raise click.ClickException(
            f"the app {app.main_path or app.name!r} registers no tasks, so this worker "
            "would dead-letter every message it receives; start it with -A naming the "
            "module that defines your tasks (or set `app` in petiole.toml)"
        )


def _comma_list(value: str | None) -> list[str] | None:
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def _autoscale(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Bounds | None:
    if value is None:
        return None
    try:
        return Bounds.parse(value)
    except PetioleError as exc:
        raise click.BadParameter(str(exc)) from exc


def _umask(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return int(value, 8)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an octal number such as 022") from None


def _ignored_flag(arg: str) -> bool:
    entry = celery_names.lookup("worker flag", arg) if arg.startswith("-") else None
    return entry is not None and entry.how == "ignored"


class WorkerCommand(GroupedCommand):
    """``petiole worker``: a flag of Celery's worker that Petiole spells otherwise or
    lacks is answered from :mod:`petiole.celery_names` (the Petiole spelling, or what
    to do instead), not with click's bare "No such option"."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Celery flags that ask for what Petiole does anyway (--without-gossip, ...):
        # accepted, with no effect.
        kept = [arg for arg in args if not _ignored_flag(arg)]
        try:
            return super().parse_args(ctx, kept)
        except click.NoSuchOption as exc:
            entry = celery_names.lookup("worker flag", exc.option_name)
            if entry is None:
                raise
            raise click.UsageError(entry.message(exc.option_name), ctx) from None


@click.command(cls=WorkerCommand)
@common_options
@grouped_option(
    "-n",
    "--hostname",
    group=WORKER,
    help="Name of this worker in logs and results; %h is the host's name, %n its first "
    "label, %d its domain, %i the worker process's number (as Celery's).",
)
@grouped_option(
    "--prefetch-multiplier",
    group=WORKER,
    type=click.IntRange(min=1),
    default=None,
    help="Hold at most concurrency x this many messages; prefork: 4 x this in each worker "
    "process, 1 when this is 1 (default: prefetch_multiplier).",
)
@grouped_option(
    "--shutdown-timeout",
    "shutdown_timeout_s",
    group=WORKER,
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds running tasks may take to finish after SIGTERM before they are returned "
    "to the queue (default: shutdown_timeout_s).",
)
@grouped_option(
    "-c",
    "--concurrency",
    group=POOL,
    type=click.IntRange(min=1),
    default=None,
    help="Tasks run at once (default: worker_concurrency, else the number of CPUs).",
)
@grouped_option(
    "--workers",
    "worker_processes",
    group=POOL,
    metavar="N",
    type=click.IntRange(min=0),
    default=None,
    help="Start N worker processes under a supervisor, each reserving and running its own "
    "tasks with its own pool; 0: this process is the worker (with prefork: -c of them) "
    "(default: the worker_processes setting, 0 unless set).",
)
@grouped_option(
    "-P",
    "--pool",
    group=POOL,
    metavar="NAME",
    default=None,
    help="prefork (the default: -c worker processes, each running its own tasks one at a "
    "time), processes (-c children fed by one worker), threads (I/O-bound tasks), solo "
    "(one at a time, in the worker itself), asyncio, or a plugin's pool.",
)
@grouped_option(
    "--time-limit",
    "time_limit_s",
    group=POOL,
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Hard time limit of tasks that set none (default: the time_limit_s setting).",
)
@grouped_option(
    "--soft-time-limit",
    "soft_time_limit_s",
    group=POOL,
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Soft time limit of tasks that set none (default: the soft_time_limit_s setting).",
)
@grouped_option(
    "--max-tasks-per-child",
    group=POOL,
    metavar="N",
    type=click.IntRange(min=1),
    default=None,
    help="Replace a prefork worker process or a processes-pool child after N tasks "
    "(default: max_tasks_per_child).",
)
@grouped_option(
    "--max-memory-per-child",
    "max_memory_per_child_kib",
    group=POOL,
    metavar="KIB",
    type=click.IntRange(min=1),
    default=None,
    help="Replace a prefork worker process or a processes-pool child once a task leaves "
    "it using more resident memory "
    "than this many KiB, as Celery's flag counts (default: the max_memory_per_child_mb "
    "setting, which is in MiB: 1048576 KiB here is 1024 there).",
)
@grouped_option(
    "-Q",
    "--queues",
    group=QUEUES,
    metavar="A,B",
    default=None,
    help="Comma-separated queues to consume, earlier ones first "
    "(default: the worker_queues setting, else default_queue).",
)
@grouped_option(
    "-X",
    "--exclude-queues",
    group=QUEUES,
    metavar="A,B",
    default=None,
    help="Comma-separated queues not to consume, of those -Q or worker_queues name.",
)
@grouped_option(
    "--autoscale",
    group=FEATURES,
    metavar="MAX,MIN",
    callback=_autoscale,
    default=None,
    help="Grow the pool up to MAX while work waits; shrink it down to MIN (at least 1) as "
    "executors stay idle. processes and threads pools; replaces -c.",
)
@grouped_option(
    "--autoscale-idle",
    "autoscale_idle_s",
    group=FEATURES,
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"With --autoscale: retire an executor idle this long (default: {DEFAULT_IDLE_S:g}).",
)
@grouped_option(
    "-E",
    "--task-events",
    group=FEATURES,
    is_flag=True,
    help="Not available yet: Petiole has no task event stream (exits with status 2).",
)
@grouped_option(
    "-D",
    "--detach",
    group=DAEMON,
    is_flag=True,
    help="Run in the background (double fork, new session). The command returns once the "
    "worker is ready, exit status 0, or with the error that kept it from starting.",
)
@grouped_option(
    "--pidfile",
    group=DAEMON,
    metavar="PATH",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the worker's process id here; refuse to start if it names a live "
    f"process; remove it on exit (with --detach, default: WORKDIR/{daemon.DEFAULT_PIDFILE}).",
)
@grouped_option(
    "-f",
    "--logfile",
    group=DAEMON,
    metavar="PATH",
    type=click.Path(dir_okay=False),
    default=None,
    help="Append the worker's output (its log and its pool children's) to PATH instead "
    "of the terminal (with --detach, default: discarded).",
)
@grouped_option(
    "--workdir",
    group=DAEMON,
    metavar="DIR",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="With --detach: the directory to run in (default: the current one).",
)
@grouped_option(
    "--umask",
    group=DAEMON,
    metavar="OCTAL",
    default=f"{daemon.DEFAULT_UMASK:03o}",
    callback=_umask,
    help="With --detach: the file mode creation mask.",
    show_default=True,
)
@grouped_option(
    "-B",
    "--beat",
    group=BEAT,
    is_flag=True,
    help="Not available yet: Petiole has no periodic task scheduler (exits with status 2).",
)
def worker(
    hostname: str | None,
    prefetch_multiplier: int | None,
    shutdown_timeout_s: float | None,
    concurrency: int | None,
    worker_processes: int | None,
    pool: str | None,
    time_limit_s: float | None,
    soft_time_limit_s: float | None,
    max_tasks_per_child: int | None,
    max_memory_per_child_kib: int | None,
    queues: str | None,
    exclude_queues: str | None,
    autoscale: Bounds | None,
    autoscale_idle_s: float | None,
    task_events: bool,
    detach: bool,
    pidfile: str | None,
    logfile: str | None,
    workdir: str | None,
    umask: int,
    beat: bool,
) -> None:
    """Consume tasks and run them.

    Acknowledges a message only after its task finished, renews the lease of
    every message it holds, and on SIGTERM or Ctrl-C stops taking new work,
    returns unstarted messages at once, and lets running tasks finish (a second
    signal stops at once; running tasks then return to the queue).
    """
    for flag, given in (("task_events", task_events), ("beat", beat)):
        if given:
            click.echo(f"Error: {NOT_YET[flag]}", err=True)
            sys.exit(EXIT_USAGE)
    if hostname is not None:
        hostname = expand_name(hostname)  # Celery's %h, %n, %d
    cli = state()
    cli.logfile = logfile
    lock = None
    started = None
    try:
        if detach:
            where = Path(workdir or os.getcwd()).absolute()
            lock = daemon.Pidfile(pidfile or where / daemon.DEFAULT_PIDFILE)
            output = logfile if logfile is not None else "discarded (give --logfile to keep it)"
            started = daemon.detach(
                pidfile=lock,
                logfile=logfile,
                workdir=where,
                umask=umask,
                announce=f"petiole worker: running in the background as process {{pid}}; "
                f"pidfile {lock.path}; output {output}",
            )
        else:
            if pidfile is not None:  # refused here, on the terminal, before any redirection
                lock = daemon.Pidfile(pidfile)
                lock.acquire()
            if logfile is not None:
                daemon.redirect_output(logfile)
        app = cli.app()
        ready = None if started is None else started.ready

        plan = layout(
            app.settings,
            pool=pool,
            worker_processes=worker_processes,
            concurrency=concurrency,
            prefetch_multiplier=prefetch_multiplier,
            autoscaling=autoscale is not None,
        )

        # The worker processes of a supervisor reserve in turn (petiole.worker.read_turn)
        # and share their rate limits (made once the task modules are imported, below).
        turn = ReadTurn() if plan.processes > 1 else None
        rates: SharedRateLimits | None = None

        def build(
            name: str | None, *, supervised: bool = False, held: HeldReporter | None = None
        ) -> Worker:
            return Worker(
                app,
                queues=_comma_list(queues),
                exclude_queues=_comma_list(exclude_queues),
                concurrency=plan.concurrency,
                pool=plan.pool,
                prefetch_multiplier=plan.prefetch_multiplier,
                shutdown_timeout_s=shutdown_timeout_s,
                hostname=name,
                time_limit_s=time_limit_s,
                soft_time_limit_s=soft_time_limit_s,
                max_tasks_per_child=max_tasks_per_child,
                max_memory_per_child_mb=(
                    None
                    if max_memory_per_child_kib is None
                    else max_memory_per_child_kib / KIB_PER_MIB
                ),
                autoscale=None if autoscale is None else (autoscale.maximum, autoscale.minimum),
                autoscale_idle_s=autoscale_idle_s,
                supervised=supervised,
                held=held,
                read_turn=turn,
                rate_limits=rates,
            )

        if plan.processes == 0:
            _require_tasks(app)
            w = build(hostname)
            if lock is not None:
                w.on_exit_now.append(lock.release)
            code = w.run(ready=ready)
        else:

            def run_worker(
                index: int, worker_ready: Callable[[], None], held: HeldReporter | None
            ) -> int:
                if started is not None:
                    started.forget()  # the supervisor says when all are ready
                worker = build(numbered(hostname, index), supervised=True, held=held)
                code = worker.run(ready=worker_ready, stop_signals=(STOP_SIGNAL,))
                app.close()
                return code

            _require_tasks(app)
            _check_components(app)
            threads_left(THREADS_END_S)  # those of the connections just closed: not forked
            if plan.processes > 1:
                rates = SharedRateLimits.of_tasks(app.tasks)
            if plan.prefork:
                logger.info(
                    "prefork: %d worker process%s, each running one task at a time and "
                    "holding up to %d message%s (while its tasks are short: docs/worker.md, "
                    '"Prefetch")',
                    plan.processes,
                    "" if plan.processes == 1 else "es",
                    plan.prefetch_multiplier,
                    "" if plan.prefetch_multiplier == 1 else "s",
                )
            release = functools.partial(return_to_queue, app)
            try:
                code = Supervisor(plan.processes, run_worker, release=release).run(ready=ready)
            finally:
                if turn is not None:
                    turn.close()
                if rates is not None:
                    rates.close()
        app.close()
    except PetioleError as exc:
        if started is not None:  # the command that started it is waiting to say why
            started.failed(str(exc))
        raise
    finally:
        if lock is not None:
            lock.release()
    sys.exit(code)
