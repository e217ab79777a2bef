"""``petiole call``, ``petiole result`` and ``petiole purge``."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from petiole import diagnosis, states
from petiole.cli.context import common_options, state
from petiole.errors import MessageDeadLettered, ResultTimeout
from petiole.result import AsyncResult, GroupResult


def _json_arg(kind: type, label: str) -> Any:
    def convert(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return kind()
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise click.BadParameter(f"{label} must be JSON: {exc}") from exc
        if not isinstance(parsed, kind):
            raise click.BadParameter(f"{label} must be a JSON {kind.__name__}, got {value!r}")
        return parsed

    return convert


#: The exit status of ``call --wait`` and ``result --wait`` for a task that failed (or
#: was revoked), so that a script or cron job running one notices; 0 when it succeeded.
TASK_FAILED_EXIT = 1
#: ... and when its message was dead-lettered: it will not run until requeued
#: (``petiole dlq requeue``), so waiting longer is pointless.
DEAD_LETTERED_EXIT = 3


#: While ``--wait`` waits, a line on stderr says what the task is waiting for: first
#: after this many seconds, then every :data:`NOTE_EVERY_S` (stdout stays the JSON).
FIRST_NOTE_S = 5.0
NOTE_EVERY_S = 30.0


def _wait(result: AsyncResult, timeout: float | None) -> Any:
    """The task's value once it is ready (``get(propagate=False)``); meanwhile a line
    on stderr after :data:`FIRST_NOTE_S` and every :data:`NOTE_EVERY_S` saying why
    it is not (no worker consuming its queue, dead-lettered, ...), so a wait with no
    ``--timeout`` does not sit silent for ever."""
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    slice_s = FIRST_NOTE_S
    while True:
        if deadline is not None and deadline - time.monotonic() <= slice_s:
            try:
                return result.get(timeout=max(deadline - time.monotonic(), 0.0), propagate=False)
            except ResultTimeout as exc:  # its message counts the last slice only
                message = str(exc).split(": ", 1)[-1]
                raise ResultTimeout(f"not ready after {timeout:.1f} s: {message}") from None
        try:
            return result.get(timeout=slice_s, propagate=False)
        except ResultTimeout:
            waited_s = time.monotonic() - started
            click.echo(f"still {result.state} after {waited_s:.0f} s: {result.why()}", err=True)
            if diagnosis.dead_letter(result.app, result.id, queue=result.queue) is not None:
                click.echo("not waiting for a dead-lettered task", err=True)
                sys.exit(DEAD_LETTERED_EXIT)
            slice_s = NOTE_EVERY_S


def _show(result: AsyncResult, timeout: float | None, *, exit_on_failure: bool) -> None:
    """Print the finished task as JSON; with ``exit_on_failure``, exit with
    :data:`TASK_FAILED_EXIT` if it failed."""
    value = _wait(result, timeout)
    payload: dict[str, Any] = {"id": result.id, "state": result.state}
    failed = result.state in (states.FAILURE, states.REVOKED)
    if failed:
        payload["error"] = f"{type(value).__name__}: {value}"
        payload["traceback"] = result.traceback
    else:
        payload["result"] = value
    click.echo(json.dumps(payload, default=repr, indent=2))
    if failed and exit_on_failure:
        if isinstance(value, MessageDeadLettered):  # recorded by the worker that refused it
            click.echo("its message was dead-lettered: it runs once requeued", err=True)
            sys.exit(DEAD_LETTERED_EXIT)
        sys.exit(TASK_FAILED_EXIT)


@click.command()
@common_options
@click.argument("name")
@click.option(
    "--args", "args", callback=_json_arg(list, "--args"), help="JSON list, e.g. '[2, 3]'."
)
@click.option("--kwargs", "kwargs", callback=_json_arg(dict, "--kwargs"), help="JSON object.")
@click.option("-Q", "--queue", default=None, help="Queue to send to (default: default_queue).")
@click.option(
    "--countdown", type=float, default=None, help="Run no earlier than N seconds from now."
)
@click.option("--priority", type=click.IntRange(0, 9), default=None, help="0-9, higher first.")
@click.option(
    "--wait/--no-wait",
    default=False,
    help="Wait for the result and print it; exit 1 if the task failed, 3 if its "
    "message was dead-lettered (it will not run until requeued).",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="With --wait, give up after N seconds (meanwhile stderr says why it is not done).",
)
def call(
    name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    queue: str | None,
    countdown: float | None,
    priority: int | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Send task NAME (it need not be importable here) and print its id. A task the
    app registers has its arguments checked first, as ``delay()`` checks them.

    With --wait, print its outcome as JSON instead, and exit 1 if it failed or
    was revoked (0 if it succeeded): a cron job sees a failure."""
    app = state().app()
    task = app.tasks.get(name)
    if task is not None and task.options.typing:  # registered here: checked as delay() checks
        try:
            task.check_arguments(args or [], kwargs or {})
        except TypeError as exc:
            raise click.UsageError(str(exc)) from None
    result = app.send_task(name, args, kwargs, queue=queue, countdown=countdown, priority=priority)
    if wait:
        _show(result, timeout, exit_on_failure=True)
    else:
        click.echo(result.id)


@click.command()
@common_options
@click.argument("task_id")
@click.option(
    "--wait/--no-wait",
    default=False,
    help="Wait until the task is ready; exit 1 if it failed, 3 if its message was dead-lettered.",
)
@click.option("--timeout", type=float, default=None, help="With --wait, give up after N seconds.")
def result(task_id: str, wait: bool, timeout: float | None) -> None:
    """Print the state and result (or error and traceback) of TASK_ID as JSON; for a
    task not done yet, why: where its message is (waiting, on which queue and broker,
    or dead-lettered with the reason). With --wait, exit 1 if it failed or was revoked.
    A group's id prints its members and their states."""
    app = state().app()
    res = app.AsyncResult(task_id)
    if res.meta.get("kind") == "group":  # a group's saved member ids: show the members
        _show_group(GroupResult.restore(task_id, app), wait, timeout)
        return
    if wait or res.ready():
        _show(res, timeout, exit_on_failure=wait)
    else:
        click.echo(json.dumps({"id": task_id, "state": res.state, "why": res.why()}, indent=2))


def _show_group(group: GroupResult, wait: bool, timeout: float | None) -> None:
    """Print a group's members and their states as JSON (after waiting for each,
    with ``wait``: then exit with :data:`TASK_FAILED_EXIT` if one failed)."""
    if wait:
        deadline = None if timeout is None else time.monotonic() + timeout
        for member in group:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            _wait(member, left)
    members = [{"id": member.id, "state": member.state} for member in group]
    ready = all(m["state"] in states.READY_STATES for m in members)
    click.echo(json.dumps({"group": group.id, "ready": ready, "members": members}, indent=2))
    if wait and any(m["state"] in (states.FAILURE, states.REVOKED) for m in members):
        sys.exit(TASK_FAILED_EXIT)


@click.command()
@common_options
@click.option(
    "-Q", "--queues", metavar="A,B", default=None, help="Queues to empty (default: default_queue)."
)
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
def purge(queues: str | None, force: bool) -> None:
    """Delete every waiting and delayed message in the queues.

    Running tasks are not stopped. Where the broker counts messages held by a
    worker as the queue's (Redis, SQLite, SQS, MongoDB), theirs are deleted too:
    such a task finishes but is never delivered again, and its worker warns that
    it lost their leases. On AMQP they stay with the worker."""
    app = state().app()
    names = [q.strip() for q in queues.split(",")] if queues else [app.settings.default_queue]
    if not force:
        click.confirm(f"Delete all messages in {', '.join(names)}?", abort=True)
    for name in names:
        click.echo(f"{name}: purged {app.transport.purge(name)} message(s)")


@click.command()
@common_options
@click.argument("task_ids", nargs=-1, required=True)
@click.option(
    "--terminate",
    is_flag=True,
    help="Also stop it if running (prefork and processes pools; solo under --workers).",
)
@click.option("--reason", default="revoked from the command line", show_default=True)
def revoke(task_ids: tuple[str, ...], terminate: bool, reason: str) -> None:
    """Revoke TASK_IDS: a revoked task that has not started never runs, on any worker.
    A task that has finished keeps its result (said on stderr)."""
    finished = state().app().revoke(list(task_ids), terminate=terminate, reason=reason)
    for task_id, task_state in finished.items():
        click.echo(f"{task_id} had finished ({task_state}): its result is kept", err=True)
    suffix = " (stopping running ones)" if terminate else ""
    click.echo(f"revoked {len(task_ids) - len(finished)} task(s){suffix}")
