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
* **Event hooks** (``petiole_app_configured`` ... ``petiole_task_failure``) let
  plugins observe and shape work. Their return values are ignored. The per-task
  ones are skipped entirely, at no cost, when no plugin implements them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click
import pluggy

from petiole.backend import BackendFactory
from petiole.config import Settings
from petiole.pools.base import PoolFactory
from petiole.ports import AppHandle, WorkerHandle
from petiole.request import Request
from petiole.serializers import Serializer
from petiole.stages import Codec, Signer
from petiole.task import Task
from petiole.transport import TransportFactory

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
