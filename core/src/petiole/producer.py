"""What signatures and tasks send through: the :class:`Producer` Protocol (the
app's ``send_task`` and result handles), and sending many calls over it.

Canvas and tasks take a :class:`Producer` (the app is one) rather than importing
the app. Many sends go out in batches: :func:`sending_in_batches` is the block
behind ``app.sending_in_batches()`` (publishes pipelined where the transport
offers :class:`~petiole.transport.PublishesInBatches`, durable at the block's
end), and :func:`send_many` the loop behind ``Task.delay_many``: bounded
batches, each durable before the next is read, and a :class:`SendManyError`
that says which calls were sent when one fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from petiole.capabilities import offers
from petiole.envelope import Workflow
from petiole.errors import ConfigError, PetioleError
from petiole.ids import new_id
from petiole.ports import ResultsApp
from petiole.result import AsyncResult
from petiole.transport import PublishesInBatches, publishing_in_batches


class Producer(ResultsApp, Protocol):
    def send_task(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: dt.datetime | float | None = None,
        expires: dt.datetime | float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        serializer: str | None = None,
        compression: str | None = None,
        soft_time_limit_s: float | None = None,
        time_limit_s: float | None = None,
        link: Any = None,
        link_error: Any = None,
        ignore_result: bool | None = None,
        retry: bool | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        _workflow: Workflow | None = None,
    ) -> AsyncResult:
        """Send a task by name; see :meth:`petiole.task.Task.apply_async`."""
        ...

    def send_with_defaults(
        self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> AsyncResult:
        """``send_task(name, args, kwargs)``, its options resolved once per task."""
        ...

    def run_task_here(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        serializer: str | None = None,
        propagate: bool | None = None,
    ) -> AsyncResult:
        """Run a registered task here, as a worker would; see :meth:`petiole.task.Task.apply`."""
        ...

    def AsyncResult(self, task_id: str) -> AsyncResult:  # noqa: N802 - Celery's spelling
        ...

    @property
    def tasks(self) -> Mapping[str, Callable[..., Any]]:
        """The tasks registered here, by name (called, one runs in this process)."""
        ...


# -- many at once -------------------------------------------------------------------------

#: Calls ``Task.delay_many`` sends per batch by default: big enough that a round trip
#: is shared by hundreds of messages, small enough that a batch's messages (and, on
#: a failure, the calls left in doubt) stay few.
SEND_MANY_BATCH_SIZE = 500

# How many sending_in_batches() blocks this thread (or task) is inside: a batch
# opened within one joins it, so it is not durable at its own end.
_open_blocks: ContextVar[int] = ContextVar("petiole_open_batch_blocks", default=0)


class SendManyError(PetioleError):
    """``Task.delay_many`` stopped part-way; the message says where and why (the
    cause is chained).

    ``sent``: the results of the calls known to be stored, the first ``len(sent)``
    items in order. ``unconfirmed``: the results of the calls after those that
    were handed to the broker, or about to be, when it failed: each may or may not
    be stored (check ``unconfirmed[i].state`` later, or revoke them before sending
    again). No call after them was sent."""

    def __init__(
        self,
        what: str,
        sent: list[AsyncResult],
        unconfirmed: list[AsyncResult],
        cause: BaseException,
    ) -> None:
        self.sent = sent
        self.unconfirmed = unconfirmed
        done, doubt = len(sent), len(unconfirmed)
        parts = [f"{what} stopped: {type(cause).__name__}: {cause}."]
        parts.append(f"Sent: items 0-{done - 1} (error.sent)." if done else "Sent: none.")
        if doubt:
            parts.append(
                f"May or may not be stored: items {done}-{done + doubt - 1} (error.unconfirmed)."
            )
        parts.append(f"Not sent: every item from {done + doubt} on.")
        super().__init__(" ".join(parts))


@contextlib.contextmanager
def sending_in_batches(app: ResultsApp) -> Iterator[None]:
    """A block whose sends are batched: on a transport offering
    :class:`~petiole.transport.PublishesInBatches` they are pipelined and all
    durable when the block ends (or it raises :class:`~petiole.errors.TransportError`);
    elsewhere each send waits as usual. A block inside another joins it. Eager
    mode runs each call at once, with no transport."""
    if app.settings.eager:
        yield
        return
    token = _open_blocks.set(_open_blocks.get() + 1)
    try:
        with publishing_in_batches(app.transport):
            yield
    finally:
        _open_blocks.reset(token)


Call = tuple[Sequence[Any], Mapping[str, Any]]


def send_many(
    app: ResultsApp,
    items: Iterable[Any],
    *,
    prepare: Callable[[Any], Call],
    send: Callable[[Sequence[Any], Mapping[str, Any], str], AsyncResult],
    batch_size: int,
    what: str,
) -> list[AsyncResult]:
    """Send one task per item, in batches of ``batch_size``, and return their
    results in the items' order.

    ``prepare(item)`` turns an item into ``(args, kwargs)`` and raises
    ``TypeError`` when it is not a valid call; ``send(args, kwargs, task_id)``
    sends one. Every item of a batch is prepared before any of it is sent, and
    every item of a sequence (a list) before anything is sent; a batch is sent in
    one :func:`sending_in_batches` block, so it is durable before the next batch
    is read (a generator of a million items holds one batch at a time). A failure
    after something was sent raises :class:`SendManyError`; before, the error
    itself (a ``TypeError`` names the item)."""
    if batch_size < 1:
        raise ConfigError(f"{what}: batch_size must be at least 1, got {batch_size}")

    def prepared(numbered: Iterable[tuple[int, Any]]) -> list[Call]:
        calls = []
        for index, item in numbered:
            try:
                calls.append(prepare(item))
            except TypeError as exc:
                raise TypeError(f"{what}, item {index}: {exc}") from None
        return calls

    if isinstance(items, Sequence):
        calls_in: Iterable[Call] = prepared(enumerate(items))  # all checked up front
        checked = True
    else:
        calls_in, checked = items, False
    # Inside an app.sending_in_batches() block the batches join it: nothing is
    # durable before that block ends, so nothing can be reported as sent.
    joined = _open_blocks.get() > 0
    # Without batches, a publish that returned is durable on its own.
    exact = app.settings.eager or not offers(app.transport, PublishesInBatches)
    sent: list[AsyncResult] = []
    source = iter(calls_in)
    while True:
        start = len(sent)
        chunk = list(itertools.islice(source, batch_size))
        if not chunk:
            return sent
        try:
            batch = chunk if checked else prepared(enumerate(chunk, start))
        except TypeError as exc:
            if not sent:
                raise
            stored, doubt = ([], sent) if joined else (sent, [])
            raise SendManyError(what, stored, doubt, exc) from exc
        ids = [new_id() for _ in batch]
        done: list[AsyncResult] = []
        try:
            with sending_in_batches(app):
                for (args, kwargs), task_id in zip(batch, ids, strict=True):
                    done.append(send(args, kwargs, task_id))
        except Exception as exc:
            if not sent and not done:
                raise  # nothing went out before it: the error as a single send raises it
            failing = [AsyncResult(i, app) for i in ids[len(done) : len(done) + 1]]
            if joined:
                stored, doubt = [], sent + done + failing
            elif exact:
                stored, doubt = sent + done, failing
            else:
                stored, doubt = sent, done + failing
            raise SendManyError(what, stored, doubt, exc) from exc
        sent.extend(done)
