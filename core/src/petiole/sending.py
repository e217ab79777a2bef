"""Sending tasks: build the message, run it through the stages, publish it.

A :class:`Sender` turns a task call (name, arguments, options) into an
:class:`~petiole.envelope.Envelope` — headers built by the envelope module,
the body serialized and, from ``compression_min_bytes`` on, encoded by the
``compression`` codec — and publishes it on the app's transport, signed when a
signer is set, between the ``petiole_before_publish`` and
``petiole_after_publish`` hooks. The app's ``send_task`` and a worker's
retries (:mod:`petiole.execution`) both send through it. In eager mode the
envelope is handed to the eager runner (:mod:`petiole.eager`) instead.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, cast
from urllib.parse import urlsplit

from petiole.backend import PushesToSender, RepliesToSender, ResultBackend
from petiole.capabilities import offers
from petiole.envelope import IDENTITY, Envelope, Workflow, retry_headers, task_headers
from petiole.errors import ConfigError, PetioleError, TransportError
from petiole.ids import new_id
from petiole.plugins import PluginRegistry, implemented
from petiole.ports import AppHandle
from petiole.publish_retry import NO_RETRY, RetryPolicy, retry_failed
from petiole.request import Request, continuing_workflow, current_request
from petiole.result import AsyncResult
from petiole.serializers import Serializer
from petiole.stages import Codec
from petiole.task import Task

# `expires` numbers below this are relative ("in N seconds"), above it absolute epochs.
_RELATIVE_EXPIRES_LIMIT_S = 365 * 86400.0

RunEagerly = Callable[[Envelope, str, "bool | None"], AsyncResult]
"""``run(envelope, queue, propagate)``: run a task message here and now (eager mode,
``Task.apply``); ``propagate`` raises a failure (None: ``eager_propagates``)."""


class SendingApp(AppHandle, Protocol):
    """What a :class:`Sender` uses of its app: settings, transport, stages, hooks,
    and its tasks' options."""

    @property
    def plugins(self) -> PluginRegistry: ...

    @property
    def backend_if_open(self) -> ResultBackend | None: ...

    @property
    def tasks(self) -> Mapping[str, Task[Any, Any]]: ...


def _factory_replies_to_sender(plugins: PluginRegistry, backend_url: str) -> bool:
    """Whether the result backend registered for ``backend_url``'s scheme says, on its
    factory, that it delivers results to their sender. A scheme no plugin knows
    answers False here: the backend's own error comes when results are read."""
    scheme = urlsplit(backend_url).scheme.lower()
    try:
        factory = plugins.get("result backend", scheme).component
    except PetioleError:
        return False
    return bool(getattr(factory, "replies_to_sender", False))


def _epoch(value: dt.datetime | float) -> float:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ConfigError(
                f"naive datetime {value.isoformat()} is ambiguous: pass an aware datetime "
                "(e.g. datetime.now(timezone.utc))"
            )
        return value.timestamp()
    return float(value)


class SendPlan(NamedTuple):
    """What the sends of one task with the same options share, resolved once:
    ``Sender.plan`` makes it, ``Sender.send`` sends a call with it. The app keeps
    one per task for ``delay()`` (the task's route, its options and the settings
    do not change from call to call), so a plain call resolves nothing again."""

    name: str
    queue: str
    priority: int | None
    serializer: Serializer
    #: Compresses bodies of ``compress_from`` bytes or more; None: never compressed.
    codec: Codec | None
    compress_from: int
    time_limits: tuple[float | None, float | None]
    #: Whether a successful run stores its result (when the call does not say).
    keeps_result: bool
    retry_policy: RetryPolicy


class Sender:
    """Sends the task messages of one app. Reads the app's settings, transport and
    stages on each send, so an app reconfigured (``override()``) sends accordingly."""

    def __init__(self, app: SendingApp, *, run_eagerly: RunEagerly) -> None:
        self.app = app
        self._run_eagerly = run_eagerly
        # Whether the backend of the URL last seen replies to the sender (see
        # _reply_address); the URL is kept so an app reconfigured asks again.
        self._replies_for: str | None = None
        self._replies = False

    def plan(
        self,
        name: str,
        *,
        queue: str | None = None,
        priority: int | None = None,
        serializer: str | None = None,
        compression: str | None = None,
        soft_time_limit_s: float | None = None,
        time_limit_s: float | None = None,
        retry_policy: RetryPolicy = NO_RETRY,
    ) -> SendPlan:
        """The sends of task ``name`` with these options (None: the settings'), resolved:
        an unknown serializer or codec fails here, on every call, not only on long ones."""
        if priority is not None and not 0 <= priority <= 9:
            raise ConfigError(f"priority must be 0-9, got {priority}")
        app, settings = self.app, self.app.settings
        codec: Codec | None = None
        codec_name = compression or settings.compression
        if codec_name:
            codec = app.codec(codec_name)
            if codec.name == IDENTITY:
                codec = None
        return SendPlan(
            name,
            queue or settings.default_queue,
            priority,
            app.serializer(serializer or settings.task_serializer),
            codec,
            settings.compression_min_bytes,
            (soft_time_limit_s, time_limit_s),
            self._keeps(name, None),
            retry_policy,
        )

    def send(
        self,
        plan: SendPlan,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: dt.datetime | float | None = None,
        expires: dt.datetime | float | None = None,
        task_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        ignore_result: bool | None = None,
        workflow: Workflow | None = None,
        run_here: bool = False,
        propagate: bool | None = None,
    ) -> AsyncResult:
        """Send a call of the task ``plan`` resolved (see ``Task.apply_async`` for the
        options).

        Sent from inside a running task, the new task records it as its parent
        and shares its root (the workflow it belongs to). ``run_here``: run it
        in this thread instead, as in eager mode (``Task.apply``).
        """
        now = time.time()
        if countdown:
            due: float | None = now + countdown
        else:
            due = _epoch(eta) if eta is not None else None
        expires_at = None
        if expires is not None:
            expires_at = _epoch(expires)
            if not isinstance(expires, dt.datetime) and expires_at < _RELATIVE_EXPIRES_LIMIT_S:
                expires_at += now
        task_id = task_id or new_id()
        root_id = parent_id = reply_to = None
        parent = current_request.get()
        if parent is not None and parent.id:
            parent_id, root_id = parent.id, parent.root_id or parent.id
            if continuing_workflow.get():
                # A workflow's results go to the client that started it; a task a
                # task sends of its own is this process's to wait for.
                reply_to = parent.reply_to
            if task_id != parent.id:  # a retry is the same task, not a child
                parent.children.append(task_id)
        given = headers.get("reply_to") if headers else None
        if isinstance(given, str):
            reply_to = given  # the caller's own choice wins
        elif reply_to is None and not run_here:
            keeps = plan.keeps_result if ignore_result is None else not ignore_result
            reply_to = self._reply_address(task_id, keeps_result=keeps)
        message_headers = task_headers(
            task_id,
            plan.name,
            sent_at=now,
            eta=due,
            expires=expires_at,
            priority=plan.priority,
            time_limits=plan.time_limits,
            root_id=root_id,
            parent_id=parent_id,
            workflow=workflow,
            reply_to=reply_to,
            extra=headers,
        )
        if ignore_result is not None:
            message_headers["ignore_result"] = bool(ignore_result)
        envelope = self._envelope(plan, message_headers, args, kwargs)
        if run_here or self.app.settings.eager:
            return self._run_eagerly(envelope, plan.queue, propagate)
        return self._publish(plan, envelope)

    def _keeps(self, name: str, ignore_result: bool | None) -> bool:
        """Whether a successful run of task ``name`` stores its result: this call's
        choice, else the task's (when it is registered here), else the setting."""
        if ignore_result is None:
            task = self.app.tasks.get(name)
            ignore_result = task.options.ignore_result if task is not None else None
        if ignore_result is None:
            ignore_result = self.app.settings.ignore_result
        return not ignore_result

    def _reply_address(self, task_id: str, *, keeps_result: bool) -> str | None:
        """The result backend's reply address when it delivers results to their
        sender (``rpc://``); else, with a store that pushes records to a listening
        sender (:class:`~petiole.backend.PushesToSender`), where this thread
        listens for ``task_id``'s, if it does and the task keeps a result (a
        store may push to one task of a thread's at a time: not to one whose
        result is ignored); else None. Not asked in eager mode, which stores
        results itself.

        Whether the backend delivers is read from its factory
        (``replies_to_sender``), and a store is asked only once something made
        it: sending must not create, let alone connect to, a result store that
        may be down while the broker is up."""
        settings = self.app.settings
        if settings.eager:
            return None
        url = settings.backend_url
        if self._replies_for != url:
            self._replies = _factory_replies_to_sender(self.app.plugins, url)
            self._replies_for = url
        if not self._replies:
            store = self.app.backend_if_open
            if keeps_result and store is not None and offers(store, PushesToSender):
                return cast(PushesToSender, store).listening_address(task_id)
            return None
        backend = self.app.backend
        if offers(backend, RepliesToSender):
            return cast(RepliesToSender, backend).reply_address()
        return None

    def send_retry(
        self,
        request: Request,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        eta: float,
        serializer: str | None = None,
        compression: str | None = None,
    ) -> None:
        """Send the next attempt of a running task (``Task.retry()``, after its RETRY
        state is stored): same id, lineage and options, one more retry, due at ``eta``;
        ``serializer`` and ``compression`` are the task's (None: the app's)."""
        message_headers = retry_headers(request, eta=eta, sent_at=time.time())
        plan = self.plan(
            request.task, queue=request.queue, serializer=serializer, compression=compression
        )
        envelope = self._envelope(plan, message_headers, args, kwargs)
        if self.app.settings.eager:
            self._run_eagerly(envelope, plan.queue, None)
        else:
            self._publish(plan, envelope)

    def _envelope(
        self,
        plan: SendPlan,
        message_headers: dict[str, Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
    ) -> Envelope:
        """The message: hooks called, body serialized and, when long enough, compressed."""
        app = self.app
        args = list(args)
        kwargs = dict(kwargs) if kwargs else {}
        before = implemented(app.plugins.hook.petiole_before_publish)
        if before is not None:
            before(
                app=app, queue=plan.queue, headers=message_headers, args=tuple(args), kwargs=kwargs
            )
        serializer = plan.serializer
        body = serializer.dumps([args, kwargs])
        codec = plan.codec
        encoding = IDENTITY
        if codec is not None and len(body) >= plan.compress_from:
            body, encoding = codec.encode(body), codec.name
        return Envelope(message_headers, body, serializer.content_type, encoding)

    def _publish(self, plan: SendPlan, envelope: Envelope) -> AsyncResult:
        app = self.app
        queue = plan.queue
        payload = envelope.to_bytes(app.signer())
        task_id = envelope.task_id
        priority = envelope.priority or 0
        due = envelope.eta

        def publish() -> None:
            # The transport is made, and connects, on first use: inside the retried
            # call, so a process's first send rides out an outage as later ones do.
            transport = app.transport
            # Measured after connecting: a first send's connect time must not delay the task.
            delay_s = max(0.0, due - time.time()) if due else 0.0
            max_delay = transport.capabilities.max_delay_s
            if max_delay is not None:
                # Longer delays are re-delayed by the worker that receives the message early.
                delay_s = min(delay_s, max_delay)
            transport.publish(
                queue, payload, message_id=task_id, delay_s=delay_s, priority=priority
            )

        try:
            publish()  # the first try: a send that goes through describes nothing
        except TransportError as exc:
            if not plan.retry_policy.max_retries:
                raise
            retry_failed(publish, plan.retry_policy, f"sending task {plan.name}[{task_id}]", exc)
        after = implemented(app.plugins.hook.petiole_after_publish)
        if after is not None:
            after(app=app, queue=queue, headers=envelope.headers)
        return AsyncResult(task_id, app, task_name=plan.name, queue=queue)
