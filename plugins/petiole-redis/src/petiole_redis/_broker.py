"""What the broker's two key layouts share: :class:`BrokerBase`.

The list layout (:mod:`petiole_redis.transport`) and the streams layout
(:mod:`petiole_redis.streams`) store messages differently and so reserve, settle
and count them differently; everything else is the same and lives here: the
connection, publishing (one call per message, each layout saying what the call
is), ``batch()`` and ``publish_many``, the dead-letter store (one format, so
``petiole dlq`` works alike; each layout says how a dead letter goes back),
broadcast over pub/sub, and closing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from petiole.errors import MessageTooLarge, TransportError
from petiole.transport import DeadLetter, TransportCapabilities
from petiole_redis._client import Client, Closed, Connector, FastClient, Script, command
from petiole_redis._errors import NoScriptError
from petiole_redis._keys import Keys
from petiole_redis._options import parse_url
from petiole_redis._pubsub import Subscription
from petiole_redis._repair import text

COMPONENT = "redis broker"

logger = logging.getLogger("petiole_redis")

T = TypeVar("T")

# Dead letters requeued per script call when requeueing a whole queue.
_REQUEUE_BATCH = 1000
# A batch() block sends what it holds once it holds this many messages or bytes
# of payload: a loop of a million publishes keeps at most one round's worth in
# memory, and one round stays well under the server's query buffer limit (1 GB).
_BATCH_MAX_MESSAGES = 500
_BATCH_MAX_BYTES = 4 * 1024 * 1024
# A resent publish looks for its first sending this much further back than the
# client's clock says it was sent: the server's clock stamped it, in whole ms.
_RESEND_MARGIN_MS = 1000
_DEAD_LIST = Script("dead_list")


@dataclass(slots=True)
class _Batch:
    """What one thread's open :meth:`BrokerBase.batch` holds."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)  # not sent yet
    held_bytes: int = 0  # their payloads' size
    stored: int = 0  # sent in earlier rounds of this block, and stored


class BrokerBase:
    """The part of a Redis :class:`~petiole.transport.Transport` both layouts share.

    A layout sets :attr:`publish_script` and implements :meth:`_publish_call`
    (the command that stores one message) and :meth:`_requeue_dead_call` (the
    script and keys that publish dead letters back), besides reserving and
    settling."""

    capabilities = TransportCapabilities(
        priorities=True,
        max_delay_s=None,
        broadcast=True,
        max_message_bytes=None,  # the server's proto-max-bulk-len (512 MB by default)
        leases_expire=True,
        min_lease_s=0.0,
        fifo=True,
        queue_preference=True,
    )
    #: The script a layout's publish calls run (loaded again after a server restart).
    publish_script: Script

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        target = parse_url(url, options, component=COMPONENT)
        self.options = target.options
        self.keys = Keys(target.options.key_prefix)
        self._conn = Connector(target, component=COMPONENT, error_type=TransportError)
        self._conn.connect()
        # A blocking wait must return before the socket's read timeout would cut it off.
        self._max_block_s = min(5.0, target.options.socket_timeout_s / 2)
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._subscriptions_lock = threading.Lock()
        self._batches = threading.local()  # .open: this thread's open batch() block

    @property
    def data_generation(self) -> int:
        """0, plus one each time the server was found to have lost its data (see
        :mod:`petiole_redis._client`). A lease taken in an earlier generation
        is gone with the data: its extension fails, and the worker did not stall."""
        return self._conn.data_generation

    @property
    def data_lost_at(self) -> float | None:
        """When (``time.time()``) the server was last found to have lost its data; None if never."""
        return self._conn.data_lost_at

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._conn.target.masked_url!r})"

    # -- publishing ----------------------------------------------------------------

    def _publish_call(
        self, queue: str, payload: bytes, message_id: str, delay_s: float, priority: int
    ) -> tuple[Any, ...]:
        """The command that stores one message (a priority outside 0-9 clamped into it)."""
        raise NotImplementedError

    def publish(
        self,
        queue: str,
        payload: bytes,
        *,
        message_id: str = "",
        delay_s: float = 0.0,
        priority: int = 0,
    ) -> None:
        """Store the message (one call); durable per the server's AOF settings when
        this returns. A priority outside 0-9 is clamped into it. Inside
        :meth:`batch`, the message is only queued; see there."""
        self._check_size(payload)
        call = self._publish_call(queue, payload, message_id, delay_s, priority)
        pending: _Batch | None = getattr(self._batches, "open", None)
        if pending is not None:
            pending.calls.append(call)
            pending.held_bytes += len(payload)
            if len(pending.calls) >= _BATCH_MAX_MESSAGES or pending.held_bytes >= _BATCH_MAX_BYTES:
                self._send_batch(pending)
            return
        self._store(f"publish to queue {queue!r}", [call])

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Publishes of this thread in the block are pipelined: sent in rounds of
        up to 500 messages (or 4 MB of payloads), one round trip each, and the rest
        at the block's end (:class:`~petiole.transport.PublishesInBatches`).

        When the block ends every one of them is stored, durable per the server's
        AOF settings, or a :class:`~petiole.errors.TransportError` says how many
        of the block's messages were stored and how many may not be. Each message is
        its own call, stored whole or not at all. A round resent after a lost reply
        (an outage) stores nothing twice: the list layout's script refuses a message's
        random id twice, the streams layout's looks for its entry first (a bounded
        look, see there). A block inside a block joins it; a block left by an
        exception still sends what it queued (as publishes outside a block would
        have been)."""
        if getattr(self._batches, "open", None) is not None:
            yield  # a batch in a batch (a group of groups): the outer block sends all
            return
        pending = _Batch()
        self._batches.open = pending
        try:
            yield
        finally:
            self._batches.open = None
            self._send_batch(pending)

    def _send_batch(self, pending: _Batch) -> None:
        """Send the calls ``pending`` holds in one pipelined round trip (retried
        through an outage as every call is); count them as stored once it returns."""
        calls = pending.calls
        if not calls:
            return
        pending.calls, pending.held_bytes = [], 0
        try:
            self._store(f"publish {len(calls)} messages", calls)
        except TransportError as exc:
            raise TransportError(
                f"{exc} — of the {pending.stored + len(calls)} messages published in this "
                f"batch, {pending.stored} are stored; the last {len(calls)} may not be"
            ) from exc
        pending.stored += len(calls)

    def publish_many(
        self,
        queue: str,
        payloads: Iterable[bytes],
        *,
        message_ids: Sequence[str] | None = None,
        delay_s: float = 0.0,
        priority: int = 0,
    ) -> int:
        """Publish several messages to ``queue`` in one pipelined round trip.

        Each is stored by its own call (a message is never half stored); all are
        stored when this returns. Returns how many were published.
        """
        batch = list(payloads)
        ids = list(message_ids) if message_ids is not None else [""] * len(batch)
        if len(ids) != len(batch):
            raise ValueError("message_ids must have one id per payload")
        for payload in batch:
            self._check_size(payload)
        calls = [
            self._publish_call(queue, payload, mid, delay_s, priority)
            for payload, mid in zip(batch, ids, strict=True)
        ]
        if calls:
            self._store(f"publish {len(calls)} messages to queue {queue!r}", calls)
        return len(calls)

    def _store(self, what: str, calls: list[tuple[Any, ...]]) -> None:
        """Send publish ``calls`` in one pipelined round trip, through an outage as
        every call is. A sending after the first goes through :meth:`_resend_call`:
        the first may have been stored though its reply was lost."""
        first_sent_at: float | None = None
        script = self.publish_script

        def attempt(client: FastClient) -> None:
            nonlocal first_sent_at
            todo = calls
            if first_sent_at is None:
                first_sent_at = time.monotonic()
            else:
                window_ms = ms(time.monotonic() - first_sent_at) + _RESEND_MARGIN_MS
                todo = [self._resend_call(call, window_ms) for call in calls]
            run_scripts(client, todo, script)

        self._call_fast(what, attempt)

    def _resend_call(self, call: tuple[Any, ...], sent_ms_ago: int) -> tuple[Any, ...]:
        """The call that sends a publish again, its first sending ``sent_ms_ago``:
        the call itself where the layout's publish refuses a message twice."""
        return call

    def _check_size(self, payload: bytes) -> None:
        limit = self.capabilities.max_message_bytes
        if limit is not None and len(payload) > limit:
            raise MessageTooLarge(len(payload), limit, "redis")

    # -- dead letters (one store and format for both layouts) ------------------------------

    def _requeue_dead_call(self, queue: str) -> tuple[Script, tuple[str, ...]]:
        """The script that publishes dead letters of ``queue`` back, and its keys: it
        takes ``(count, kept, *ids)`` (or ``(batch, kept)`` for all) and returns
        ``[moved, kept]``, as ``lua/requeue_dead.lua``."""
        raise NotImplementedError

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        q = self.keys.queue(queue)
        reply = self._call(
            f"read the dead letters of queue {queue!r}",
            lambda c: _DEAD_LIST(c, (q.dead, q.dead_msgs, q.dead_info), (limit,)),
        )
        return [
            _dead_letter(queue, reply[i], reply[i + 1], reply[i + 2])
            for i in range(0, len(reply), 3)
        ]

    def requeue_dead_letters(self, queue: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        """Republish dead letters (all, or those ids; unknown ids are ignored) with
        a fresh delivery count and their priority and message id, oldest first."""
        script, keys = self._requeue_dead_call(queue)
        what = f"requeue the dead letters of queue {queue!r}"
        if dead_letter_ids is not None:
            ids = list(dict.fromkeys(dead_letter_ids))
            if not ids:
                return 0
            moved, kept = self._call(what, partial(script, keys=keys, argv=(len(ids), 0, *ids)))
        else:
            moved = kept = 0
            while True:
                argv = (_REQUEUE_BATCH, kept)  # those kept stay first: pass over them
                batch = self._call(what, partial(script, keys=keys, argv=argv))
                moved, kept = moved + batch[0], kept + batch[1]
                if batch[0] + batch[1] < _REQUEUE_BATCH:
                    break
        if kept:
            logger.warning(
                "queue %r: %d dead letter%s could not be requeued: no payload is stored",
                queue,
                kept,
                "" if kept == 1 else "s",
            )
        return int(moved)

    def purge_dead_letters(self, queue: str) -> int:
        q = self.keys.queue(queue)

        def run(client: Client) -> int:
            counted, _ = client.transaction([("ZCARD", q.dead), ("UNLINK", *q.dead_letters)])
            return int(counted)

        return self._call(f"purge the dead letters of queue {queue!r}", run)

    # -- broadcast -----------------------------------------------------------------------------

    def broadcast(self, channel: str, payload: bytes) -> int:
        """Send ``payload`` to every current subscriber of ``channel`` (one
        ``PUBLISH``); return how many the server handed it to. Nothing is stored."""
        self._check_size(payload)
        name = self.keys.broadcast_channel(channel)
        return int(
            self._call(f"broadcast on {channel!r}", lambda c: command(c, "PUBLISH", name, payload))
        )

    def subscribe(
        self, channels: Sequence[str], on_message: Callable[[str, bytes], None]
    ) -> Subscription:
        """Call ``on_message(channel, payload)`` for each message broadcast on
        ``channels`` from now on (see :class:`petiole.transport.Broadcast`); the
        server has the subscription when this returns. Close it when done."""
        subscription = Subscription(
            self._conn, channels, on_message, channel_key=self.keys.broadcast_channel
        )
        with self._subscriptions_lock:
            self._subscriptions.add(subscription)
        return subscription

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the subscriptions and every connection; a waiting ``reserve``
        returns ``[]``. Idempotent."""
        with self._subscriptions_lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.close()
        self._conn.close()

    def _call(self, what: str, work: Callable[[Client], T]) -> T:
        try:
            return self._conn.call(what, work)
        except Closed:
            raise TransportError(f"{self._conn.describe()} is closed ({what})") from None

    def _call_fast(self, what: str, work: Callable[[FastClient], T]) -> T:
        try:
            return self._conn.call_fast(what, work)
        except Closed:
            raise TransportError(f"{self._conn.describe()} is closed ({what})") from None


def ms(seconds: float) -> int:
    """Seconds as whole milliseconds (never negative), as scripts take them."""
    return max(0, round(seconds * 1000))


def run_scripts(client: FastClient, calls: list[tuple[Any, ...]], script: Script) -> None:
    """Run ``calls`` (``script.args(...)`` each, or plain commands) in one pipelined
    round trip; after a server restart (empty script cache) load the script and run
    only the calls that did not run. Raises the first other error a call got."""
    settle_script_replies(client, calls, client.execute_pipeline(calls), script)


def settle_script_replies(
    client: FastClient, calls: Sequence[tuple[Any, ...]], replies: Sequence[Any], script: Script
) -> None:
    """Given the pipelined ``replies`` to ``calls``: raise the first error other
    than a missing script; load the script and run again the calls it stopped
    (a server restarted with an empty script cache), raising any error they get."""
    for reply in replies:
        if isinstance(reply, Exception):
            break
    else:
        return  # the usual case, settled without building lists
    others = [r for r in replies if isinstance(r, Exception) and not _no_script(r)]
    if others:
        raise others[0]
    missing = [call for call, r in zip(calls, replies, strict=True) if _no_script(r)]
    if not missing:
        return
    command(client, "SCRIPT", "LOAD", script.source)
    for reply in client.execute_pipeline(missing):
        if isinstance(reply, Exception):
            raise reply


def _no_script(reply: object) -> bool:
    return isinstance(reply, NoScriptError)


def _dead_letter(queue: str, ident: bytes, raw_info: bytes, payload: bytes) -> DeadLetter:
    """A dead letter from dead_list.lua's reply; an info that is missing or
    unreadable (edited by hand) still lists the dead letter, with defaults."""
    try:
        info = json.loads(bytes(raw_info).decode(errors="replace")) if raw_info else {}
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    reason = info.get("reason")
    count, dead_at_ms = info.get("count"), info.get("dead_at_ms")
    return DeadLetter(
        dead_letter_id=text(ident),
        queue=queue,
        reason=reason if isinstance(reason, str) else "(its dead-letter info is unreadable)",
        delivery_count=count if isinstance(count, int) else 0,
        dead_at=dead_at_ms / 1000 if isinstance(dead_at_ms, (int, float)) else 0.0,
        payload=bytes(payload),
    )
