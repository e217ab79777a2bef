"""The application object: settings, plugins, the task registry, and sending tasks."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit

from petiole import config, states
from petiole import result as results
from petiole.backend import Coordination, ResultBackend, ResultRecord
from petiole.coordination import open_coordination
from petiole.envelope import IDENTITY, Envelope, Workflow, retry_headers, task_headers
from petiole.errors import ConfigError, ContentDisallowed, UnknownSerializer
from petiole.plugins import PluginRegistry, implemented
from petiole.request import Request, current_request
from petiole.serializers import Serializer
from petiole.stages import Codec, Signer
from petiole.task import TASK_OPTIONS, Task, TaskOptions
from petiole.transport import Transport
from petiole.urls import mask_url

F = TypeVar("F", bound=Callable[..., Any])

# `expires` numbers below this are relative ("in N seconds"), above it absolute epochs.
_RELATIVE_EXPIRES_LIMIT_S = 365 * 86400.0


def scheme_of(url: str) -> str:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ConfigError(
            f"{mask_url(url)!r} is not a URL: it needs a scheme such as sqlite:// or redis://"
        )
    return scheme.lower()


def _epoch(value: dt.datetime | float) -> float:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ConfigError(
                f"naive datetime {value.isoformat()} is ambiguous: pass an aware datetime "
                "(e.g. datetime.now(timezone.utc))"
            )
        return value.timestamp()
    return float(value)


class Petiole:
    """A Petiole application.

    ``Petiole("proj", broker="redis://...", backend="redis://...", **settings)``;
    any setting of :class:`~petiole.config.Settings` may be given as a keyword.
    Settings are read lazily (first use), so ``--config`` and environment
    variables set by the CLI after the app module was imported still apply.
    """

    def __init__(
        self,
        name: str = "petiole",
        *,
        broker: str | None = None,
        backend: str | None = None,
        config_file: str | os.PathLike[str] | None = None,
        **settings: Any,
    ) -> None:
        self.name = name
        if broker is not None:
            settings["broker_url"] = broker
        if backend is not None:
            settings["backend_url"] = backend
        self._overrides = config.validate(settings, source="keyword arguments")
        self._config_file = config_file
        self._environ: Mapping[str, str] | None = None  # None: os.environ
        self.main_path: str | None = None  # "module:attr", set when loaded by path
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._lock = threading.RLock()
        self._settings: config.Settings | None = None
        self._plugins: PluginRegistry | None = None
        self._in_code_plugins: list[tuple[object, str | None]] = []
        self._transport: Transport | None = None
        self._backend: ResultBackend | None = None
        self._coordination: Coordination | None = None
        self._serializers: dict[str, Serializer] = {}
        self._result_accept: dict[str, Serializer] = {}  # content type -> accepted serializer
        self._register_builtin_tasks()

    def __repr__(self) -> str:
        return f"<Petiole {self.name!r}>"

    # -- configuration and plugins --------------------------------------------

    @property
    def settings(self) -> config.Settings:
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = config.load_settings(
                        self._overrides, config_file=self._config_file, environ=self._environ
                    )
        return self._settings

    def configure(self, **settings: Any) -> None:
        """Change settings before first use (in tests, say). Too late once the
        transport or backend is connected."""
        with self._lock:
            if self._transport is not None or self._backend is not None:
                raise ConfigError("configure() must be called before the app is first used")
            self._overrides.update(config.validate(settings, source="configure()"))
            self._forget_settings()

    def _forget_settings(self) -> None:
        """Settings and everything derived from them are rebuilt on next use."""
        self._settings = None
        self._plugins = None
        self._serializers.clear()
        self._result_accept.clear()

    @contextmanager
    def override(self, *, isolated: bool = True, **settings: Any) -> Iterator[Petiole]:
        """Run the app with other settings for the duration of the block (tests).

        ``settings`` are layered over the app's own keyword arguments; the app's
        connections are closed on entry and on exit, so it may have been used
        before and is used as configured afterwards. With ``isolated`` (the
        default) the config file and ``PETIOLE_*`` variables are ignored: a
        project's ``petiole.toml`` (a Redis URL, a pool, plugin options) must not
        leak into its tests. Not for use while a worker of this app is running.
        """
        validated = config.validate(settings, source="override()")
        with self._lock:
            saved = (self._overrides, self._config_file, self._environ)
            self.close()
            self._overrides = {**self._overrides, **validated}
            if isolated:
                self._config_file, self._environ = os.devnull, {}
            self._forget_settings()
        try:
            yield self
        finally:
            with self._lock:
                self.close()
                self._overrides, self._config_file, self._environ = saved
                self._forget_settings()

    @property
    def plugins(self) -> PluginRegistry:
        if self._plugins is None:
            with self._lock:
                if self._plugins is None:
                    s = self.settings
                    registry = PluginRegistry(
                        enabled=s.plugins_enabled, disabled=s.plugins_disabled
                    )
                    registry.load_all()
                    for plugin, name in self._in_code_plugins:
                        registry.register(plugin, name)
                    self._plugins = registry
                    registry.hook.petiole_app_configured(app=self)
        return self._plugins

    def register_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register hook implementations defined in code (not through an entry point)."""
        with self._lock:
            self._in_code_plugins.append((plugin, name))
            if self._plugins is not None:
                self._plugins.register(plugin, name)

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            with self._lock:
                if self._transport is None:
                    url = self.settings.broker_url
                    factory = self.plugins.get("transport", scheme_of(url)).component
                    self._transport = factory(url, self.settings.broker_options)
        return self._transport

    @property
    def backend(self) -> ResultBackend:
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    url = self.settings.backend_url
                    factory = self.plugins.get("result backend", scheme_of(url)).component
                    self._backend = factory(url, self.settings.backend_options)
        return self._backend

    @property
    def coordination(self) -> Coordination:
        """The store chords, revoke and leader election coordinate through:
        ``coordination_url``'s, else the result backend when it can.

        Raises :class:`~petiole.coordination.CoordinationUnavailable` when neither.
        """
        if self._coordination is None:
            with self._lock:
                if self._coordination is None:
                    self._coordination = open_coordination(
                        self.settings.coordination_url,
                        self.settings.coordination_options,
                        backend_url=self.settings.backend_url,
                        backend=lambda: self.backend,
                        factory_for=lambda url: (
                            self.plugins.get("result backend", scheme_of(url)).component
                        ),
                    )
        return self._coordination

    def serializer(self, name: str) -> Serializer:
        found = self._serializers.get(name)
        if found is None:
            found = self.plugins.get("serializer", name).component
            self._serializers[name] = found
        return found

    def serializer_for_content_type(self, content_type: str) -> Serializer:
        provided = self.plugins.serializer_by_content_type(content_type)
        if provided is None:
            raise UnknownSerializer(
                f"no installed serializer handles content type {content_type!r}"
            )
        return provided.component  # type: ignore[no-any-return]

    def accepted_content_types(self) -> frozenset[str]:
        return frozenset(self.serializer(n).content_type for n in self.settings.accept_content)

    def check_accepted(self, content_type: str) -> None:
        if content_type not in self.accepted_content_types():
            raise ContentDisallowed(content_type, self.settings.accept_content)

    def result_serializer_for(self, content_type: str) -> Serializer:
        """The serializer that may decode a stored result of ``content_type``.

        Results are decoded under an accept list as task bodies are: whoever can
        write to the result store must not get a client to unpickle their payload.
        Raises :class:`~petiole.errors.ContentDisallowed` naming the setting.
        """
        accepted = self._result_accept.get(content_type)
        if accepted is None:
            names = self.settings.result_accept_content
            if names is None:
                names = self.settings.accept_content
            if content_type not in {self.serializer(n).content_type for n in names}:
                # Named even when unset: it is the setting that governs results.
                raise ContentDisallowed(content_type, names, setting="result_accept_content")
            accepted = self._result_accept[content_type] = self.serializer_for_content_type(
                content_type
            )
        return accepted

    def codec(self, name: str) -> Codec:
        """The codec of ``content_encoding`` ``name``; raises
        :class:`~petiole.errors.UnknownComponentError` (what is installed, what to
        install) when no plugin provides it."""
        return self.plugins.get("codec", name).component  # type: ignore[no-any-return]

    def decode_body(self, envelope: Envelope) -> bytes:
        """The serialized body of ``envelope``: decoded by its ``content_encoding``'s
        codec, refused past ``max_body_bytes`` (a decompression bomb)."""
        limit = self.settings.max_body_bytes
        return self.codec(envelope.content_encoding).decode(envelope.body, max_output_bytes=limit)

    # The signer built for one Settings object: rebuilt when the settings are.
    _signer_built: tuple[config.Settings, Signer | None] | None = None

    def signer(self) -> Signer | None:
        """The signer named by the ``signer`` setting, built once per settings; None
        when unset. Raises :class:`~petiole.errors.ConfigError` when it cannot be
        built (a missing key) and ``UnknownComponentError`` when not installed."""
        settings = self.settings
        built = self._signer_built
        if built is None or built[0] is not settings:
            name = settings.signer
            signer = self.plugins.get("signer", name).component(settings) if name else None
            built = self._signer_built = (settings, signer)
        return built[1]

    @property
    def result_serializer(self) -> Serializer:
        return self.serializer(self.settings.result_serializer)

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            if self._coordination is not None:
                shared: object = self._coordination  # often the result backend itself
                if shared is not self._backend:
                    self._coordination.close()
                self._coordination = None
            if self._backend is not None:
                self._backend.close()
                self._backend = None

    # -- tasks -------------------------------------------------------------------

    def _register_builtin_tasks(self) -> None:
        """``task.map(...)`` and ``task.starmap(...)`` run as these, on any worker of the app."""

        def run_map(task_name: str, items: list[Any]) -> list[Any]:
            task = self.tasks[task_name]
            return [task(item) for item in items]

        def run_starmap(task_name: str, items: list[list[Any]]) -> list[Any]:
            task = self.tasks[task_name]
            return [task(*args) for args in items]

        self.task(run_map, name="petiole.map")
        self.task(run_starmap, name="petiole.starmap")

    @overload
    def task(self, fn: F, **options: Any) -> Task[Any, Any]: ...

    @overload
    def task(self, fn: None = None, **options: Any) -> Callable[[F], Task[Any, Any]]: ...

    def task(self, fn: Any = None, **options: Any) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(name=..., queue=...)``."""
        unknown = set(options) - TASK_OPTIONS
        if unknown:
            raise ConfigError(
                f"unknown task option(s) {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(sorted(TASK_OPTIONS))}"
            )
        task_options = TaskOptions(**options)

        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            name = task_options.name or f"{func.__module__}.{func.__qualname__}"
            task: Task[Any, Any] = Task(self, func, task_options, name)
            self.tasks[name] = task
            return task

        return register(fn) if fn is not None else register

    def AsyncResult(self, task_id: str) -> results.AsyncResult:  # noqa: N802 - Celery's spelling
        return results.AsyncResult(task_id, self)

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
        soft_time_limit_s: float | None = None,
        time_limit_s: float | None = None,
        _workflow: Workflow | None = None,
    ) -> results.AsyncResult:
        """Send a task by name (it need not be registered here). See ``Task.apply_async``.

        Sent from inside a running task, the new task records it as its parent
        and shares its root (the workflow it belongs to).
        """
        settings = self.settings
        now = time.time()
        due = now + countdown if countdown else (_epoch(eta) if eta is not None else None)
        if expires is not None:
            expires_at = _epoch(expires)
            if not isinstance(expires, dt.datetime) and expires_at < _RELATIVE_EXPIRES_LIMIT_S:
                expires_at += now
        else:
            expires_at = None
        if priority is not None and not 0 <= priority <= 9:
            raise ConfigError(f"priority must be 0-9, got {priority}")
        task_id = task_id or str(uuid.uuid4())
        queue = queue or settings.default_queue
        root_id = parent_id = None
        parent = current_request.get()
        if parent is not None and parent.id:
            parent_id, root_id = parent.id, parent.root_id or parent.id
            if task_id != parent.id:  # a retry is the same task, not a child
                parent.children.append(task_id)
        all_headers = task_headers(
            task_id,
            name,
            sent_at=now,
            eta=due,
            expires=expires_at,
            priority=priority,
            time_limits=(soft_time_limit_s, time_limit_s),
            root_id=root_id,
            parent_id=parent_id,
            workflow=_workflow,
            extra=headers,
        )
        return self._publish(name, task_id, queue, all_headers, args, kwargs, serializer)

    def _publish(
        self,
        name: str,
        task_id: str,
        queue: str,
        all_headers: dict[str, Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        serializer: str | None,
    ) -> results.AsyncResult:
        settings = self.settings
        args = list(args)
        kwargs = dict(kwargs or {})
        before = implemented(self.plugins.hook.petiole_before_publish)
        if before is not None:
            before(app=self, queue=queue, headers=all_headers, args=tuple(args), kwargs=kwargs)
        body_serializer = self.serializer(serializer or settings.task_serializer)
        body = body_serializer.dumps([args, kwargs])
        encoding = IDENTITY
        if settings.compression and len(body) >= settings.compression_min_bytes:
            codec = self.codec(settings.compression)
            body, encoding = codec.encode(body), codec.name
        envelope = Envelope(all_headers, body, body_serializer.content_type, encoding)
        if settings.eager:
            return self._run_eagerly(envelope, queue)
        transport = self.transport
        # Measured after connecting: a first send's connect time must not delay the task.
        due = envelope.eta
        delay_s = max(0.0, due - time.time()) if due else 0.0
        max_delay = transport.capabilities.max_delay_s
        if max_delay is not None:
            # Longer delays are re-delayed by the worker that receives the message early.
            delay_s = min(delay_s, max_delay)
        transport.publish(
            queue,
            envelope.to_bytes(self.signer()),
            message_id=task_id,
            delay_s=delay_s,
            priority=envelope.priority or 0,
        )
        after = implemented(self.plugins.hook.petiole_after_publish)
        if after is not None:
            after(app=self, queue=queue, headers=all_headers)
        return results.AsyncResult(task_id, self, task_name=name, queue=queue)

    def send_retry(
        self,
        task: Task[Any, Any],
        request: Request,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        eta: float,
    ) -> None:
        """Send the next attempt of a running task: same id, lineage and options,
        one more retry. Called by ``Task.retry()``."""
        headers = retry_headers(request, eta=eta, sent_at=time.time())
        queue = request.queue or self.settings.default_queue
        self._publish(task.name, request.id, queue, headers, args, kwargs, None)

    def _run_eagerly(self, envelope: Envelope, queue: str) -> results.AsyncResult:
        from petiole.execution import Rejected, TaskRunner

        runner = TaskRunner(self, hostname="eager")
        try:
            state, record = runner.execute(envelope, queue=queue, delivery_count=1, eager=True)
            # Eager retries run at once, one after the other, until done or out of retries.
            while state == states.RETRY:
                envelope = envelope.retried()
                state, record = runner.execute(envelope, queue=queue, delivery_count=1, eager=True)
        except Rejected as exc:
            raise ConfigError(f"eager task {envelope.task_name!r} cannot run: {exc}") from exc
        if record is None:
            record = ResultRecord(envelope.task_id, state, date_done=time.time())
        result = results.EagerResult(envelope.task_id, self, record)
        if state == states.FAILURE and self.settings.eager_propagates:
            result.get()
        return result

    def revoke(
        self, task_ids: str | Sequence[str], *, terminate: bool = False, reason: str = "revoked"
    ) -> None:
        """Revoke tasks: one not yet started never runs, on any worker (its state
        becomes REVOKED); with ``terminate``, a running one is stopped too (the
        processes pool kills its child; other pools let it finish)."""
        from petiole.revocation import revoke

        revoke(
            self,
            [task_ids] if isinstance(task_ids, str) else task_ids,
            terminate=terminate,
            reason=reason,
        )

    def store_result(self, record: ResultRecord) -> None:
        ttl = self.settings.result_ttl_s
        self.backend.store(record, ttl_s=ttl if ttl > 0 else None)
