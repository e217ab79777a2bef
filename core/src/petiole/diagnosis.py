"""Why is a task not done? One sentence a person can act on.

:func:`explain` is what ``AsyncResult.why()``, the message of a ``get()`` that
timed out, and ``petiole result`` say about a task that is not ready: its
state, and — from the broker — whether its message is still waiting (and in
which queue, on which broker), or was dead-lettered (with the reason). A
task stuck in PENDING is the commonest puzzle of a task queue (no worker on
that queue, a worker on another broker, a task the worker does not know);
each answer names the command that confirms it.

It is best-effort: any broker or store error ends the explanation with what
is known so far rather than raising.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from petiole import states
from petiole.backend import ResultRecord
from petiole.envelope import Envelope
from petiole.errors import PetioleError, ProtocolError
from petiole.ports import ResultsApp
from petiole.transport import DeadLetterAdmin
from petiole.urls import mask_url

# Dead letters read per queue when looking for a task's message.
_DEAD_LETTER_SCAN = 1000


def location(component: object, url: str) -> str:
    """Where a broker or store keeps its data, for people: the component's own
    ``location`` (an SQLite file's absolute URL), else its URL with the password masked."""
    found = getattr(component, "location", None)
    return found if isinstance(found, str) else mask_url(url)


def explain(
    app: ResultsApp,
    task_id: str,
    *,
    task_name: str | None = None,
    queue: str | None = None,
    record: ResultRecord | None = None,
    record_read: bool = False,
) -> str:
    """A sentence on where task ``task_id`` stands and what to check next.
    ``record_read``: the caller already read the result store (``record``, maybe None)."""
    name = f"{task_name}[{task_id}]" if task_name else task_id
    try:
        if record is None and not record_read:
            record = app.backend.get(task_id)
    except PetioleError as exc:
        return f"task {name}: the result store cannot be read ({exc})"
    state = record.state if record is not None else states.PENDING
    if record is not None and state != states.PENDING:
        return _known_state(name, record)
    queues = [queue] if queue else _likely_queues(app)
    try:
        broker = location(app.transport, app.settings.broker_url)
        letter = _find_dead_letter(app, task_id, queues)
        if letter is not None:
            dead_queue, reason = letter
            return (
                f"task {name} is PENDING: its message was dead-lettered from queue "
                f"{dead_queue!r}: {reason} (see `petiole dlq list -Q {dead_queue}`)"
            )
        sizes = {q: app.transport.size(q) for q in queues}
    except PetioleError as exc:
        return f"task {name} is PENDING; the broker cannot be read ({exc})"
    where = ", ".join(f"{q!r} holds {n} message{'' if n == 1 else 's'}" for q, n in sizes.items())
    if any(sizes.values()):
        wanted = ",".join(q for q, n in sizes.items() if n)
        return (
            f"task {name} is PENDING: no worker has finished it yet. On broker {broker}, "
            f"{where}: is a worker running and consuming {wanted}? "
            f"(start one with `petiole worker -A <your app> -Q {wanted}`)"
        )
    if not app.transport.capabilities.counts_leased:
        # The broker counts only messages no worker holds (AMQP): an empty queue does
        # not mean the message is gone, and "held by a busy worker" is the likely case.
        return (
            f"task {name} is PENDING and its message is not waiting on broker {broker} "
            f"({where}; this broker does not count the messages workers hold): most "
            "likely a worker holds it, delivered but not started, behind a task still "
            "running in that worker process (a long task, or one waiting for another "
            "task's result: give long tasks `--prefetch-multiplier 1`, and send a chain "
            "or a chord rather than wait inside a task); otherwise it was sent to "
            "another broker, its result expired or was forgotten, or the id is wrong"
        )
    return (
        f"task {name} is PENDING and its message is not on broker {broker} ({where}): "
        "it was sent to another broker (a producer in another directory uses another "
        "petiole.db), its result expired or was forgotten, or the id is wrong"
    )


def explain_within(
    budget_s: float,
    app: ResultsApp,
    task_id: str,
    *,
    task_name: str | None = None,
    queue: str | None = None,
    record: ResultRecord | None = None,
) -> str:
    """:func:`explain`, given at most ``budget_s`` seconds: a broker that is slow or
    down must not stretch a timed-out ``get()`` by its reconnect timeout. The
    explanation is worked out in a daemon thread, abandoned when out of time."""
    answer: list[str] = []

    def work() -> None:
        answer.append(
            explain(app, task_id, task_name=task_name, queue=queue, record=record, record_read=True)
        )

    thread = threading.Thread(target=work, name="petiole-diagnosis", daemon=True)
    thread.start()
    thread.join(budget_s)
    if answer:
        return answer[0]
    name = f"{task_name}[{task_id}]" if task_name else task_id
    return (
        f"task {name}: where it stands could not be told within {budget_s:g} s "
        "(the broker is slow or down)"
    )


def _known_state(name: str, record: ResultRecord) -> str:
    worker = record.meta.get("worker")
    by = f" on worker {worker}" if worker else ""
    if record.state == states.STARTED:
        return f"task {name} is STARTED{by}: it is running"
    if record.state == states.RECEIVED:
        return f"task {name} is RECEIVED{by}: a worker holds it and will start it soon"
    dead_queue = record.meta.get("dead_lettered_from")
    if isinstance(dead_queue, str):  # recorded by the worker that dead-lettered it unrun
        return (
            f"task {name} is {record.state}{by}: its message was dead-lettered from queue "
            f"{dead_queue!r}, not run: {record.meta.get('reason')} (see `petiole dlq list -Q "
            f"{dead_queue}`; requeued, it runs again)"
        )
    if record.state == states.RETRY:
        eta = record.meta.get("retry_eta")
        when = (
            f" in {max(0.0, float(eta) - time.time()):.0f} s"
            if isinstance(eta, (int, float))
            else ""
        )
        return f"task {name} is RETRY{by}: it failed and will run again{when}"
    return f"task {name} is {record.state}{by}"


def dead_letter(
    app: ResultsApp, task_id: str, *, queue: str | None = None
) -> tuple[str, str] | None:
    """``(queue, reason)`` when task ``task_id``'s message is in a dead-letter store
    (of ``queue``, else of the queues a worker likely consumes); None when it is
    not, or the broker cannot tell or be read."""
    try:
        return _find_dead_letter(app, task_id, [queue] if queue else _likely_queues(app))
    except PetioleError:
        return None


def _likely_queues(app: ResultsApp) -> list[str]:
    return list(dict.fromkeys([app.settings.default_queue, *app.settings.queues]))


def _find_dead_letter(
    app: ResultsApp, task_id: str, queues: Sequence[str]
) -> tuple[str, str] | None:
    transport = app.transport
    if not isinstance(transport, DeadLetterAdmin):
        return None  # the broker keeps them where only its own tools can read them
    needle = task_id.encode()
    for queue in queues:
        for letter in transport.dead_letters(queue, limit=_DEAD_LETTER_SCAN):
            if needle not in letter.payload:
                continue
            try:
                if Envelope.from_bytes(letter.payload).task_id != task_id:
                    continue
            except ProtocolError:
                continue
            return queue, letter.reason
    return None
