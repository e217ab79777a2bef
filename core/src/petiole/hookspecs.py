"""Every hook a Petiole plugin can implement. This module is the plugin author's reference.

A plugin is a module (or object) named by an entry point in the group
``petiole``; it implements hooks with ``@petiole.hookimpl``::

    # pyproject.toml of petiole-redis
    [project.entry-points.petiole]
    redis = "petiole_redis.plugin"

    # petiole_redis/plugin.py
    from petiole import hookimpl

    @hookimpl
    def petiole_transports():
        # "module:attribute": imported (with the client library) on first use only.
        return {"redis": "petiole_redis.transport:create_transport"}

Everything a plugin implements or uses is importable from one module,
:mod:`petiole.plugin_api` (``hookimpl`` too).

Two kinds of hook:

* **Registration hooks** (``petiole_transports`` ... ``petiole_cli_commands``)
  are called once per app when the component is first needed. Each returns what
  the plugin provides; every plugin's answer is collected (none is
  ``firstresult``). Components are named by a ``"module:attribute"`` string
  (loaded on first use) or given directly. Two plugins registering the same
  name is an error naming both, raised when that name is asked for, unless one
  of them is disabled in config.
* **Isolation**: a registration hook that raises costs its plugin that kind of
  component only, and a component that fails to load fails only its own name;
  each error names the plugin and its distribution when the component is asked
  for (see :mod:`petiole.plugins`).
* **Event hooks** (``petiole_app_configured`` ... ``petiole_task_rejected``) let
  plugins observe and shape work. Their return values are ignored (except
  ``petiole_setup_logging``'s). The per-task ones are skipped entirely, at no
  cost, when no plugin implements them.
* **Worker hooks cannot break the worker**: those the worker calls
  (``petiole_worker_process_init``, ``petiole_setup_logging`` and
  ``petiole_task_received`` ... ``petiole_task_rejected``) are called one
  implementation at a time; one that raises is logged with its plugin's and the
  hook's name, and the worker goes on (:mod:`petiole.worker.hooks`).

For Celery users, the signals these stand for: ``worker_process_init`` is
``petiole_worker_process_init``; ``setup_logging`` is ``petiole_setup_logging``;
``task_received``, ``task_revoked`` and ``task_unknown`` keep their names;
``task_rejected`` is ``petiole_task_rejected``, which also covers what Celery
reports as ``task_revoked(expired=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

from petiole.backend import BackendFactory
from petiole.config import Settings
from petiole.envelope import Envelope
from petiole.pools.base import Job, PoolFactory
from petiole.ports import AppHandle, WorkerHandle
from petiole.request import Request
from petiole.serializers import Serializer
from petiole.stages import Codec, Signer
from petiole.task import Task
from petiole.transport import TransportFactory

if TYPE_CHECKING:  # a worker's pool children load hooks, never the CLI (click: ~4 MB)
    import click

PROJECT = "petiole"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

SerializerFactory = Callable[[], Serializer]
"""``factory() -> Serializer``: a serializer's class, or any callable taking no
arguments, registered through ``petiole_serializers`` and called on first use."""

CodecFactory = Callable[[], Codec]
"""``factory() -> Codec``: a codec's class, or any callable taking no arguments,
registered through ``petiole_codecs`` and called on first use."""

SignerFactory = Callable[[Settings], Signer]
"""``factory(settings) -> Signer``: builds the app's signer from its settings
(the ``signing_key``, say); registered through ``petiole_signers``."""


# -- registration -----------------------------------------------------------


@hookspec
def petiole_transports() -> Mapping[str, str | TransportFactory]:
    """URL schemes this plugin's transports handle, mapped to factories.

    A factory is called as ``factory(url, options)`` with the broker URL and the
    ``broker_options`` table of the config, and returns an object satisfying
    :class:`petiole.transport.Transport`. Give it as a ``"module:attribute"``
    string: the module (and the client library it imports) is then imported
    only when the component is first used, so ``petiole plugins`` and apps using
    other components stay cheap; an import failure is reported then, naming the
    plugin and its distribution, and fails only that scheme. A callable is
    accepted too.
    """


@hookspec
def petiole_result_backends() -> Mapping[str, str | BackendFactory]:
    """URL schemes this plugin's result backends handle, mapped to factories
    (``"module:attribute"`` strings, or callables), loaded as transports are.

    Called as ``factory(url, options)`` with the ``backend_options`` table;
    returns a :class:`petiole.backend.ResultBackend`.
    """


@hookspec
def petiole_serializers() -> (
    Mapping[str, str | SerializerFactory | Serializer] | Sequence[Serializer]
):
    """Serializer names mapped to the serializers this plugin provides
    (see :class:`petiole.serializers.Serializer`).

    Each value is a ``"module:attribute"`` string naming the serializer or its
    factory (its class, or any callable taking no arguments), imported and built
    when a serializer of that name or of its content type is first needed; or
    the factory or serializer itself. The built serializer's ``name`` must be
    the key. A sequence of serializer instances is accepted too (loaded at
    once). Each is known by its ``name`` in config and by its ``content_type``
    on the wire.
    """


@hookspec
def petiole_codecs() -> Mapping[str, str | CodecFactory | Codec]:
    """Codec names mapped to the codecs this plugin provides (see
    :class:`petiole.stages.Codec`), loaded as serializers are: a
    ``"module:attribute"`` string naming the codec or its factory (its class, or
    a callable taking no arguments), or the factory or codec itself. The built
    codec's ``name`` must be the key; it is the ``content_encoding`` of the
    bodies it encodes, and the value of the ``compression`` setting that selects
    it. A worker refuses a message whose encoding no installed codec has.
    """


@hookspec
def petiole_signers() -> Mapping[str, str | SignerFactory]:
    """Signer names (the ``signer`` setting) mapped to factories
    ``factory(settings) -> Signer`` (see :class:`petiole.stages.Signer`),
    ``"module:attribute"`` strings or callables, loaded as transports are. The
    factory raises :class:`~petiole.errors.ConfigError` when a setting it needs
    (a key) is missing or unusable.
    """


@hookspec
def petiole_pools() -> Mapping[str, str | PoolFactory]:
    """Worker pool names (``-P name``) mapped to factories ``factory(concurrency, settings)``
    returning a :class:`petiole.pools.base.Pool` (``"module:attribute"`` strings, or
    callables), loaded as transports are."""


@hookspec
def petiole_cli_commands() -> Sequence[click.Command]:
    """Extra ``petiole`` subcommands (click commands). Names must not clash with the core's."""


# -- events ----------------------------------------------------------------


@hookspec
def petiole_app_configured(app: AppHandle) -> None:
    """The app's settings are final and its plugins loaded. Called once per app, lazily,
    the first time the app needs its transport, backend or registry."""


@hookspec
def petiole_worker_start(worker: WorkerHandle) -> None:
    """A worker is about to start consuming (its pool is running)."""


@hookspec
def petiole_worker_stop(worker: WorkerHandle) -> None:
    """A worker has stopped consuming and drained its pool; called before it exits."""


@hookspec
def petiole_worker_process_init(app: AppHandle, pool: str, pid: int) -> None:
    """A process that will run tasks has started and not run any yet: the place for
    per-process resources (a database connection, a client that must not be
    shared between processes). ``pool`` is the pool's name, ``pid`` the process's.

    Called in each child of the ``processes`` pool once it has loaded the app,
    before it takes a task — also in each child that replaces one (recycled by
    ``max_tasks_per_child``/``max_memory_per_child_mb``, or dead) or that
    autoscaling adds; the worker waits for it (up to 60 s, the child's start
    timeout) before giving the child work. For every pool that runs tasks in the
    worker's own process (``threads``, ``solo``, ``asyncio``, ``gevent``,
    ``eventlet``), called once, in the worker process, before the pool starts —
    so with threads, what it sets up is shared by every thread. A pool plugin
    that runs tasks in children of its own declares ``runs_in_children = True``
    and calls :func:`petiole.worker.hooks.process_init` in each.
    """


@hookspec
def petiole_setup_logging(app: AppHandle, loglevel: str, logfile: str | None) -> bool | None:
    """Set up logging yourself: return True, and Petiole adds no handler, format or
    level of its own. Every implementation is called; one True is enough.

    Called by the ``petiole`` command once it has loaded the app, and in each
    ``processes``-pool child once that has loaded the app (a spawned child starts
    with no logging configured). ``loglevel`` is a level name (``"INFO"``): the
    ``--loglevel`` given, else the ``log_level`` setting, else ``"INFO"`` (in
    children, the worker's); with neither chosen, the ``petiole.worker.tasks``
    logger is already set to WARNING (no line per task; set its level to turn
    them on). ``logfile`` is the worker's ``--logfile`` path, where its standard
    output and error already go (``None`` without one, and in pool children,
    which write there too). Not called for a worker embedded in a program of
    your own, which sets up logging itself. Add
    :class:`petiole.logs.EscapeControlCharacters` to your handlers to keep logged
    values from forging lines.
    """


@hookspec
def petiole_before_publish(
    app: AppHandle,
    queue: str,
    headers: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """A task message is about to be sent. ``headers`` may be changed in place
    (add trace context, say); args and kwargs must not be."""


@hookspec
def petiole_after_publish(app: AppHandle, queue: str, headers: Mapping[str, Any]) -> None:
    """A task message was accepted by the transport (it is durable)."""


@hookspec
def petiole_task_prerun(task: Task[Any, Any], request: Request) -> None:
    """In the process that runs the task, just before the task body is called."""


@hookspec
def petiole_task_postrun(task: Task[Any, Any], request: Request, state: str, retval: Any) -> None:
    """After the task body returned or raised; ``state`` is its outcome
    (SUCCESS, FAILURE, RETRY) and ``retval`` the return value or the exception."""


@hookspec
def petiole_task_retry(
    task: Task[Any, Any], request: Request, reason: BaseException, delay_s: float
) -> None:
    """The task asked to be retried in ``delay_s`` seconds because of ``reason``."""


@hookspec
def petiole_task_failure(
    task: Task[Any, Any], request: Request, exc: BaseException, traceback: str
) -> None:
    """The task failed for good (no retry left); ``traceback`` is its formatted traceback."""


# -- the worker's view of messages --------------------------------------------
# Called in the worker process (never in a pool child), on the thread that handles
# the message: a transport's own thread when it pushes messages. Return quickly.


@hookspec
def petiole_task_received(worker: WorkerHandle, job: Job) -> None:
    """The worker accepted a message into its prefetch: its headers passed every
    check (framing, signature, content type, registration, expiry, ETA) and it
    waits for a free slot of the pool. The body is not deserialized yet:
    ``job.envelope`` has the task's id, name and headers; ``job.queue`` and
    ``job.delivery_count`` say where it came from and how often it was delivered.
    """


@hookspec
def petiole_task_revoked(
    worker: WorkerHandle, envelope: Envelope, reason: str, terminated: bool
) -> None:
    """A revoked task was dealt with: ``terminated`` False when it was dropped
    before it started (its message acknowledged, unrun), True when it was running
    and its pool stopped it (``revoke(terminate=True)``; processes pool). ``reason``
    is the one given to ``revoke`` (``"revoked"`` when the result store cannot say).
    An expired task is not reported here but by ``petiole_task_rejected``.
    """


@hookspec
def petiole_task_unknown(worker: WorkerHandle, envelope: Envelope, queue: str) -> None:
    """A message named a task this worker's app does not register
    (``envelope.task_name``); it goes to the dead-letter store."""


@hookspec
def petiole_task_rejected(
    worker: WorkerHandle, queue: str, cause: str, reason: str, envelope: Envelope | None
) -> None:
    """A message was refused before it ran. ``cause`` is one of
    ``"max_deliveries"`` (delivered more than ``max_deliveries`` times),
    ``"malformed"`` (not in the protocol's framing, or a header of the wrong type),
    ``"signature"`` (not verified), ``"content_type"`` (not in ``accept_content``),
    ``"content_encoding"`` (no codec for it here), ``"undecodable"`` (its body
    does not decode to ``[args, kwargs]``, found when the task is about to run),
    ``"internal"`` (the worker failed to check it) — each dead-lettered — or
    ``"expired"`` (past its ``expires``: acknowledged, its state REVOKED).
    ``reason`` is the text recorded with it. ``envelope`` is ``None`` when the
    message was refused before its headers were read (``malformed``,
    ``signature``, ``internal``): nothing in it is trusted yet; for
    ``max_deliveries`` it is the envelope when the message is well formed and
    verified, else ``None``.
    """
