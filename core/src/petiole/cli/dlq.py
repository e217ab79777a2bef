"""``petiole dlq list|requeue|purge``: the dead-letter store of each queue."""

from __future__ import annotations

import contextlib
import json
import time

import click

from petiole.cli.context import common_options, state
from petiole.envelope import Envelope
from petiole.errors import ProtocolError
from petiole.transport import DeadLetterAdmin

_QUEUE = click.option(
    "-Q", "--queue", default=None, help="Queue whose dead letters to use (default: default_queue)."
)


def _queue(name: str | None) -> str:
    return name or state().app().settings.default_queue


def _admin() -> DeadLetterAdmin:
    """The transport, if it administers its dead letters itself."""
    transport = state().app().transport
    if not isinstance(transport, DeadLetterAdmin):
        raise click.ClickException(
            f"{type(transport).__name__} keeps dead letters in the broker without offering "
            "to list or requeue them here; use the broker's own tools (its dead-letter queue)"
        )
    return transport


@click.group()
@common_options
def dlq() -> None:
    """Inspect, requeue or purge dead letters: messages that could not run, with the reason."""


@dlq.command("list")
@common_options
@_QUEUE
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_(queue: str | None, limit: int, as_json: bool) -> None:
    """Show dead letters, oldest first: id, time, deliveries, task, reason."""
    name = _queue(queue)
    letters = _admin().dead_letters(name, limit=limit)
    if letters and not as_json:
        click.echo("dead letter id  dead at (UTC)  delivered  task task id  /  why")
    for letter in letters:
        try:
            envelope = Envelope.from_bytes(letter.payload)
            task, task_id = envelope.task_name, envelope.task_id
        except ProtocolError:
            task, task_id = "(unreadable)", ""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.dead_at))
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "dead_letter_id": letter.dead_letter_id,
                        "queue": letter.queue,
                        "dead_at": letter.dead_at,
                        "delivery_count": letter.delivery_count,
                        "task": task,
                        "task_id": task_id,
                        "reason": letter.reason,
                    }
                )
            )
        else:
            click.echo(
                f"{letter.dead_letter_id}  {when}Z  {letter.delivery_count}x  {task} {task_id}"
            )
            click.echo(f"    {letter.reason}")
    if not letters and not as_json:
        click.echo(f"no dead letters in {name!r}")


@dlq.command()
@common_options
@_QUEUE
@click.argument("ids", nargs=-1)
def requeue(queue: str | None, ids: tuple[str, ...]) -> None:
    """Put dead letters back in their queue: all of them, or those IDS (the first
    column of `petiole dlq list`, or a task's id)."""
    name = _queue(queue)
    admin = _admin()
    chosen = _dead_letter_ids(admin, name, ids) if ids else None
    moved = admin.requeue_dead_letters(name, chosen)
    click.echo(f"{name}: requeued {moved} message(s)")


#: How many dead letters are looked through to match ids.
_LOOKUP_LIMIT = 100_000


def _dead_letter_ids(admin: DeadLetterAdmin, queue: str, ids: tuple[str, ...]) -> list[str]:
    """The dead-letter ids IDS name (each a dead letter's id or its task's id); an
    id naming none is an error, before anything is requeued."""
    by_task: dict[str, list[str]] = {}
    known: set[str] = set()
    for letter in admin.dead_letters(queue, limit=_LOOKUP_LIMIT):
        known.add(letter.dead_letter_id)
        with contextlib.suppress(ProtocolError):  # unreadable: listed by its own id only
            task_id = Envelope.from_bytes(letter.payload).task_id
            by_task.setdefault(task_id, []).append(letter.dead_letter_id)
    chosen: list[str] = []
    unknown = []
    for given in ids:
        if given in known:
            chosen.append(given)
        elif given in by_task:
            chosen.extend(by_task[given])
        else:
            unknown.append(given)
    if unknown:
        raise click.ClickException(
            f"no dead letter {', '.join(map(repr, unknown))} in {queue!r} (nothing was "
            "requeued): give the first column of `petiole dlq list`, or a task's id"
        )
    return list(dict.fromkeys(chosen))


@dlq.command("purge")
@common_options
@_QUEUE
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
def purge_(queue: str | None, force: bool) -> None:
    """Delete every dead letter of the queue."""
    name = _queue(queue)
    if not force:
        click.confirm(f"Delete all dead letters of {name!r}?", abort=True)
    click.echo(f"{name}: deleted {_admin().purge_dead_letters(name)} dead letter(s)")
