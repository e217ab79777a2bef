"""The application object: settings, plugins, components, and the task registry.

It wires the parts together and delegates: sending to :mod:`petiole.sending`,
eager runs to :mod:`petiole.eager`, revocation to :mod:`petiole.revocation`.
Nothing below it imports it; they take the narrow Protocols of
:mod:`petiole.ports` (and :mod:`petiole.producer`), which it satisfies.
"""

from __future__ import annotations

import datetime as dt
import inspect
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NoReturn, TypeVar, cast, overload
from urllib.parse import urlsplit

from petiole import celery_names, config, current, discovery, result_signing, revocation
from petiole import result as results
from petiole.backend import Coordination, ResultBackend, ResultRecord, StoresInBatches
from petiole.canvas.signature import Signature, links_workflow, signature
from petiole.capabilities import offers
from petiole.celery_conf import CeleryConf
from petiole.celery_names import CelerySpellingError
from petiole.coordination import open_coordination
from petiole.eager import EagerRunner
from petiole.envelope import Envelope, Workflow
from petiole.errors import ConfigError, ContentDisallowed, UnknownSerializer
from petiole.plugins import PluginRegistry
from petiole.producer import sending_in_batches
from petiole.publish_retry import NO_RETRY, RetryPolicy
from petiole.routing import Router
from petiole.sending import Sender, SendPlan
from petiole.serializers import Serializer
from petiole.stages import Codec, Signer
from petiole.suggestions import did_you_mean
from petiole.task import Task, TaskOptions, check_task_options, class_defaults
from petiole.transport import Transport
from petiole.urls import mask_url

F = TypeVar("F", bound=Callable[..., Any])


def celery_time_limits(
    options: Mapping[str, Any], soft_time_limit_s: float | None, time_limit_s: float | None
) -> tuple[float | None, float | None]:
    """A call's time limits given also under Celery's names (``time_limit=``); any
    other option Celery has and Petiole lacks is refused saying what to do instead."""
    ours = {"soft_time_limit_s": soft_time_limit_s, "time_limit_s": time_limit_s}
    given = {k: v for k, v in ours.items() if v is not None}
    translated = celery_names.translate(
        "calling option", {**options, **given}, petiole_names=set(ours)
    )
    values = translated.values
    if translated.messages:
        raise CelerySpellingError(translated.messages, source="apply_async(...)")
    unknown = sorted(set(values) - set(ours))
    if unknown:
        raise ConfigError(
            f"apply_async() got unknown option(s): {', '.join(map(_with_suggestion, unknown))}"
        )
    return values.get("soft_time_limit_s"), values.get("time_limit_s")


def _with_suggestion(option: str) -> str:
    """An unknown calling option, with the closest one ``apply_async`` takes."""
    parameters = inspect.signature(Petiole.send_task).parameters.values()
    ours = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY and not p.name.startswith("_")]
    return f"{option!r}{did_you_mean(option, ours, cutoff=0.75)}"


def scheme_of(url: str) -> str:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ConfigError(
            f"{mask_url(url)!r} is not a URL: it needs a scheme such as sqlite:// or redis://"
        )
    return scheme.lower()


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
        set_as_current: bool = True,
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
        self._router: Router | None = None
        # Per task name: the settings and task a plain send's plan was made for, and the plan.
        self._default_plans: dict[str, tuple[config.Settings, Task[Any, Any] | None, SendPlan]] = {}
        #: Sends this app's tasks (eager mode: runs them here).
        self.sender = Sender(self, run_eagerly=EagerRunner(self).run)
        self._register_builtin_tasks()
        # The process's current app (unless told not to), with every shared_task on it.
        current.app_created(self, set_as_current)

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

    @property
    def conf(self) -> CeleryConf:
        """Celery's ``app.conf`` (:mod:`petiole.celery_conf`): ``update(...)``,
        assignment and reads of settings, Celery's names read as Petiole's."""
        return CeleryConf(self)

    @property
    def control(self) -> NoReturn:
        """Celery's ``app.control``: not in Petiole, the error says what to use."""
        raise AttributeError(
            "'Petiole' object has no attribute 'control': Petiole has no control "
            "queues; revoke with `app.revoke(task_ids, terminate=...)` (or `petiole "
            "revoke ID`); see docs/migrating-from-celery.md"
        )

    def config_from_object(self, obj: object, *, namespace: str | None = None) -> None:
        """Settings from a module, class, object or mapping, or the importable path of
        one (``"proj.settings"``), as Celery's; layered like keyword arguments.
        ``namespace="CELERY"``: only the ``CELERY_``-prefixed names (a Django settings
        module). Too late once the transport or backend is connected."""
        self.layer_settings(
            config.values_from_object(obj, namespace=namespace), "config_from_object()"
        )

    def layer_settings(self, values: Mapping[str, Any], what: str) -> None:
        """Put validated ``values`` over the settings given so far (``what`` set
        them: said when it is too late, once the transport or backend is connected)."""
        with self._lock:
            if self._transport is not None or self._backend is not None:
                raise ConfigError(f"{what} must be called before the app is first used")
            self._overrides.update(values)
            self._forget_settings()

    def autodiscover_tasks(
        self,
        packages: discovery.Packages | None = None,
        related_name: str | None = "tasks",
        force: bool = False,
    ) -> list[str]:
        """Import ``<package>.<related_name>`` of each package (a list, or a function
        returning one) when a worker starts, or now with ``force``; returns the
        modules imported now. See :mod:`petiole.discovery`."""
        if packages is None:  # Celery's Django projects call it so: say what to pass
            raise ConfigError(
                "autodiscover_tasks() needs the packages to look in: "
                "app.autodiscover_tasks(['proj.orders', 'proj.users']), or from Django "
                "app.autodiscover_tasks(lambda: settings.INSTALLED_APPS)"
            )
        return discovery.autodiscover_tasks(self, packages, related_name, force)

    def _forget_settings(self) -> None:
        """Settings and everything derived from them are rebuilt on next use."""
        self._settings = None
        self._plugins = None
        self._serializers.clear()
        self._result_accept.clear()
        self._router = None

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
            self._default_plans.clear()  # they hold components the plugin may provide

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            with self._lock:
                if self._transport is None:
                    self._transport = self.new_transport()
        return self._transport

    def new_transport(self) -> Transport:
        """A transport of its own to the app's broker, not :attr:`transport`; the
        caller closes it (a worker's supervisor, whose forks must not inherit one)."""
        url = self.settings.broker_url
        factory = self.plugins.get("transport", scheme_of(url)).component
        transport: Transport = factory(url, self.settings.broker_options)
        return transport

    @property
    def backend_if_open(self) -> ResultBackend | None:
        """The result backend if something made it already, else None (never makes it)."""
        return self._backend

    @property
    def backend(self) -> ResultBackend:
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    url = self.settings.backend_url
                    factory = self.plugins.get("result backend", scheme_of(url)).component
                    if url.endswith("://") and getattr(factory, "address_from_broker", False):
                        # "rpc://" alone: results travel through the broker's server
                        # (a factory that says so gets the broker URL instead).
                        url = self.settings.broker_url
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

    def decode_result(self, record: ResultRecord) -> Any:
        """The value in a stored result's payload: its signature verified first
        (``sign_results``), then deserialized under ``result_accept_content``.
        Raises :class:`~petiole.errors.SignatureError` or
        :class:`~petiole.errors.ContentDisallowed`."""
        result_signing.verify_record(record, self.signer(), required=self.settings.sign_results)
        if not record.payload:
            return None
        return self.result_serializer_for(record.content_type).loads(record.payload)

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
        """Register a function as a task: ``@app.task`` or ``@app.task(name=..., queue=...)``.

        ``base=MyTask``: build it on a :class:`~petiole.task.Task` subclass (its
        handlers run in the worker; its class attributes named like options are
        defaults). Options a Celery user knows under another name are translated
        or answered with the Petiole spelling (docs/migrating-from-celery.md)."""
        base = options.pop("base", None) or Task
        if not (isinstance(base, type) and issubclass(base, Task)):
            raise ConfigError(f"base={base!r} must be a subclass of petiole.Task")
        task_options = TaskOptions(**{**class_defaults(base), **check_task_options(options)})

        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            name = task_options.name or f"{func.__module__}.{func.__qualname__}"
            task: Task[Any, Any] = base(self, func, task_options, name)
            self.tasks[name] = task
            return task

        return register(fn) if fn is not None else register

    def AsyncResult(self, task_id: str) -> results.AsyncResult:  # noqa: N802 - Celery's spelling
        return results.AsyncResult(task_id, self)

    #: The base class of tasks (``class MyTask(app.Task)``, Celery's spelling of
    #: ``petiole.Task``), for ``@app.task(base=MyTask)``.
    Task = Task

    def signature(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A signature of task ``name`` sent through this app (it need not be
        registered here): Celery's ``app.signature``, ``petiole.signature(..., app=)``."""
        return signature(name, args, kwargs, app=self, **options)

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
        link: Signature | Sequence[Signature] | None = None,
        link_error: Signature | Sequence[Signature] | None = None,
        ignore_result: bool | None = None,
        retry: bool | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        _workflow: Workflow | None = None,
        **celery_options: Any,
    ) -> results.AsyncResult:
        """Send a task by name (it need not be registered here). See ``Task.apply_async``.

        Sent from inside a running task, the new task records it as its parent
        and shares its root (the workflow it belongs to). Options the call leaves
        out come from the first matching ``task_routes`` route, then from the task
        when it is registered here (``queue``, ``priority``, ``serializer``,
        ``compression``; signatures, chains and groups send through here too),
        then from the settings.
        """
        if celery_options:
            given = celery_time_limits(celery_options, soft_time_limit_s, time_limit_s)
            soft_time_limit_s, time_limit_s = given
        options = self._routed_options(
            name,
            args,
            kwargs,
            queue=queue,
            priority=priority,
            serializer=serializer,
            compression=compression,
            soft_time_limit_s=soft_time_limit_s,
            time_limit_s=time_limit_s,
        )
        if link is not None or link_error is not None:
            if _workflow is not None:
                raise ConfigError("pass link/link_error on the signature, not beside a workflow")
            _workflow = links_workflow(link, link_error)
            self._check_errbacks(_workflow.errbacks)
        policy = self._publish_retry_policy(retry, retry_policy)
        return self.sender.send(
            self.sender.plan(name, retry_policy=policy, **options),
            args,
            kwargs,
            countdown=countdown,
            eta=eta,
            expires=expires,
            task_id=task_id,
            headers=headers,
            ignore_result=ignore_result,
            workflow=_workflow,
        )

    def _check_errbacks(self, errbacks: Sequence[Mapping[str, Any]]) -> None:
        """A ``link_error`` errback registered here must take the failed task's id in
        front of its arguments: one written for Celery's ``(request, exc, traceback)``
        fails here, when sent, not in the worker after the task failed."""
        for errback in errbacks:
            task = self.tasks.get(str(errback.get("task")))
            if task is None or not task.options.typing or errback.get("immutable"):
                continue  # an immutable one (.si()) is sent with its own arguments alone
            args, kwargs = errback.get("args") or (), errback.get("kwargs") or {}
            try:
                task.check_arguments(("<failed task id>", *args), kwargs)
            except TypeError as exc:
                raise TypeError(
                    f"link_error={task.name}: an errback is called with the failed task's id "
                    f"in front of its arguments: {exc}. An errback written for Celery's "
                    "(request, exc, traceback) takes the id and reads the failure with "
                    "AsyncResult(task_id).result"
                ) from None

    def send_with_defaults(
        self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> results.AsyncResult:
        """``send_task(name, args, kwargs)``: what ``Task.delay`` sends. The options
        such calls share (the route's, the task's, the settings') are resolved once
        per task and settings — unless ``task_routes`` is set, whose routes may look
        at the arguments of each call."""
        settings = self.settings
        task = self.tasks.get(name)
        kept = self._default_plans.get(name)
        if kept is not None and kept[0] is settings and kept[1] is task:
            return self.sender.send(kept[2], args, kwargs)
        if settings.task_routes:
            return self.send_task(name, args, kwargs)
        plan = self.sender.plan(
            name,
            retry_policy=self._publish_retry_policy(None, None),
            **self._routed_options(
                name,
                args,
                kwargs,
                queue=None,
                priority=None,
                serializer=None,
                compression=None,
                soft_time_limit_s=None,
                time_limit_s=None,
            ),
        )
        self._default_plans[name] = (settings, task, plan)
        return self.sender.send(plan, args, kwargs)

    def sending_in_batches(self) -> AbstractContextManager[None]:
        """A block for sending many tasks in a loop::

            with app.sending_in_batches():
                for row in rows:
                    import_row.delay(row)

        On a transport that batches publishes
        (:class:`~petiole.transport.PublishesInBatches`: Redis, AMQP) the sends of
        the block in this thread are pipelined instead of waiting one by one, and
        every one is durable when the block ends — or it raises
        :class:`~petiole.errors.TransportError`. Until then a result handle exists
        but its task may not be stored yet, so wait for no result inside the block.
        On other transports each send waits as usual. Blocks nest (the outer one's
        end waits for all); a block left by an exception still sends what it
        queued, as sends outside a block would have been; in eager mode each call
        runs at once. ``Task.delay_many`` batches for you."""
        return sending_in_batches(self)

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
    ) -> results.AsyncResult:
        """Run a registered task in this thread as a worker would and return its
        final result (``Task.apply``); ``propagate``: raise its failure here
        (default: ``eager_propagates``)."""
        plan = self.sender.plan(name, serializer=serializer or self.tasks[name].options.serializer)
        return self.sender.send(
            plan, args, kwargs, task_id=task_id, headers=headers, run_here=True, propagate=propagate
        )

    def _routed_options(
        self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None, **given: Any
    ) -> dict[str, Any]:
        """The send options of one call: its own, else its route's, else the task's."""
        if all(v is not None for v in given.values()):
            return given
        router = self._router
        if router is None:
            router = self._router = Router(self.settings.task_routes)
        if router:
            chosen = {k: v for k, v in given.items() if v is not None}
            for key, value in router.route(name, args, kwargs or {}, chosen).items():
                if given[key] is None:
                    given[key] = value
        registered = self.tasks.get(name)
        if registered is not None:
            own = registered.options
            for key in ("queue", "priority", "serializer", "compression"):
                if given[key] is None:
                    given[key] = getattr(own, key)
        return given

    def _publish_retry_policy(
        self, retry: bool | None, policy: Mapping[str, Any] | None
    ) -> RetryPolicy:
        """How this send is retried when the broker stays unreachable: ``retry``
        and ``retry_policy`` of the call, else the ``publish_retry*`` settings."""
        settings = self.settings
        if not (settings.publish_retry if retry is None else retry):
            return NO_RETRY
        if policy is not None:
            return RetryPolicy.from_mapping(policy)
        built = self._retry_policy_built
        if built is None or built[0] is not settings:  # built once per settings
            built = (settings, RetryPolicy.from_mapping(settings.publish_retry_policy))
            self._retry_policy_built = built
        return built[1]

    _retry_policy_built: tuple[config.Settings, RetryPolicy] | None = None

    def revoke(
        self,
        task_ids: str | Sequence[str],
        *,
        terminate: bool = False,
        reason: str = "revoked",
        **celery_options: Any,
    ) -> dict[str, str]:
        """Revoke tasks: one not yet started never runs, on any worker (its state
        becomes REVOKED); with ``terminate``, a running one is stopped too (the
        prefork and processes pools kill the process running it; threads and solo
        let it finish) and its last state is REVOKED. A task that
        has finished keeps its result: returned are those ids, with their state.
        Celery's ``signal=``, ``wait=`` and ``timeout=`` are refused saying why."""
        revocation.refuse_celery_options(celery_options)
        return revocation.revoke(
            self,
            [task_ids] if isinstance(task_ids, str) else task_ids,
            terminate=terminate,
            reason=reason,
        )

    def store_result(self, record: ResultRecord) -> None:
        if self.settings.sign_results:
            record = result_signing.sign_record(record, self.signer())
        ttl = self.settings.result_ttl_s
        self.backend.store(record, ttl_s=ttl if ttl > 0 else None)

    def store_results(self, records: Sequence[ResultRecord]) -> None:
        """:meth:`store_result` of each, in one round trip where the backend offers
        :class:`~petiole.backend.StoresInBatches`."""
        backend = self.backend
        if not offers(backend, StoresInBatches):
            for record in records:
                self.store_result(record)
            return
        if self.settings.sign_results:
            signer = self.signer()
            records = [result_signing.sign_record(record, signer) for record in records]
        ttl = self.settings.result_ttl_s
        cast(StoresInBatches, backend).store_many(records, ttl_s=ttl if ttl > 0 else None)
