"""Plugin discovery and loading, isolated so one broken plugin cannot break start-up.

Plugins are entry points in the group ``petiole``; the entry point's name is the
plugin's name. Discovery reads only entry point metadata. Loading imports the
entry point's module and registers it with a pluggy ``PluginManager``; a module
that fails to import is logged once (naming the plugin, its distribution and the
error) and skipped, and asking for a component it would have provided raises an
error that repeats why. Plugin modules are kept thin (hook implementations only),
so loading them is cheap; each component's client library is imported when its
factory is first called.

Isolation goes down to the component. A registration hook that raises (or
answers something that is not a registration) costs that plugin that kind of
component, and nothing else: every other plugin's components of that kind, and
that plugin's other kinds, still load; asking for a missing name of that kind
names the plugin, its distribution and the error. A component named as
``"module:attribute"`` whose import fails, or a name two plugins claim, fails
only the lookups of that one name.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pluggy

from petiole import hookspecs
from petiole.errors import PluginError, PluginLoadError, UnknownComponentError
from petiole.serializers import Serializer
from petiole.stages import Codec
from petiole.suggestions import did_you_mean

logger = logging.getLogger("petiole.plugins")

ENTRY_POINT_GROUP = "petiole"
BUILTINS = "builtins"

# Which distribution provides a component we do not have, for the error message.
KNOWN_PROVIDERS: Mapping[tuple[str, str], str] = {
    ("transport", "redis"): "petiole-redis",
    ("transport", "rediss"): "petiole-redis",
    ("transport", "unix"): "petiole-redis",
    ("transport", "sqs"): "petiole-sqs",
    ("transport", "mongodb"): "petiole-mongo",
    ("transport", "mongodb+srv"): "petiole-mongo",
    ("transport", "amqp"): "petiole-amqp",
    ("transport", "amqps"): "petiole-amqp",
    ("result backend", "redis"): "petiole-redis",
    ("result backend", "rediss"): "petiole-redis",
    ("result backend", "unix"): "petiole-redis",
    ("result backend", "mongodb"): "petiole-mongo",
    ("result backend", "mongodb+srv"): "petiole-mongo",
    ("result backend", "cassandra"): "petiole-cassandra",
    ("result backend", "memcached"): "petiole-memcached",
    ("result backend", "rpc"): "petiole-amqp",
    ("serializer", "msgpack"): "petiole-msgpack",
    ("serializer", "yaml"): "petiole-yaml",
    ("codec", "zstd"): "petiole-zstd",
    ("signer", "ed25519"): "petiole-auth",
    ("signer", "x509"): "petiole-auth",
    ("pool", "gevent"): "petiole-gevent",
    ("pool", "eventlet"): "petiole-eventlet",
}


def install_command(
    distribution: str, *, package_dir: Path | None = None, cwd: Path | None = None
) -> str:
    """The pip command that installs ``distribution`` beside the running petiole.

    This petiole running from a clone (this package at ``<clone>/core/src/petiole``,
    as an editable install puts it) that has ``plugins/<distribution>/``: install that
    folder the same way. Otherwise, a wheel of it in ``dist/`` (``scripts/build-dist``
    makes them) of that clone or of the current directory: install from there.
    Otherwise, from the package index. It looks at the file system, so it is called
    only when a component is missing; ``package_dir`` and ``cwd`` are for tests.
    """
    import shlex  # an error message's: not loaded in every process

    package_dir = package_dir or Path(__file__).resolve().parent
    clone = package_dir.parents[2] if package_dir.parts[-3:] == ("core", "src", "petiole") else None
    try:
        if clone is not None and (clone / "plugins" / distribution / "pyproject.toml").is_file():
            return f"pip install -e {shlex.quote(str(clone / 'plugins' / distribution))}"
        # A wheel's file name starts with the normalized name: petiole_redis-0.1.0-....whl
        wheel = re.sub(r"[-_.]+", "_", distribution).lower()
        folders = [clone / "dist"] if clone is not None else []
        folders.append((cwd or Path.cwd()) / "dist")
        for folder in folders:
            if any(folder.glob(f"{wheel}-*.whl")):
                return f"pip install --find-links {shlex.quote(str(folder))} {distribution}"
    except OSError:  # an unreadable folder or a deleted working directory: no local copy
        pass
    return f"pip install {distribution}"


T = TypeVar("T")


@dataclass
class PluginInfo:
    """What ``petiole plugins`` shows for one plugin."""

    name: str
    value: str
    distribution: str
    version: str
    status: str = "not loaded"  # loaded | failed | disabled | not loaded
    error: PluginLoadError | None = None
    components: dict[str, list[str]] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)
    # Kinds of component whose registration hook failed: that kind only is lost.
    component_errors: dict[str, PluginError] = field(default_factory=dict)


@dataclass(frozen=True)
class Provided(Generic[T]):
    """A component and the plugin that registered it."""

    name: str
    component: T
    plugin: str


def discover() -> list[PluginInfo]:
    """Entry points of the group, without importing any of them."""
    # Imported when scanned (an app's first use), not with petiole: with what it
    # loads (email, zipfile, csv...) it is ~2 MB that a bare ``import petiole`` spares.
    from importlib import metadata

    found: dict[str, PluginInfo] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            value=ep.value,
            distribution=dist.metadata["Name"] if dist is not None else "?",
            version=dist.version if dist is not None else "?",
        )
        # The same distribution installed twice (editable and not) shows up twice.
        found.setdefault(ep.name, info)
    return sorted(found.values(), key=lambda i: (i.name != BUILTINS, i.name))


@dataclass
class _Registered:
    """What the loaded plugins register for one kind of component."""

    entries: dict[str, Provided[Any]] = field(default_factory=dict)
    resolved: set[str] = field(default_factory=set)  # names whose component is ready to use
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # name -> plugins claiming it
    failures: list[PluginError] = field(default_factory=list)  # hooks that gave nothing
    by_content_type: dict[str, Provided[Any]] = field(default_factory=dict)  # serializers


class PluginRegistry:
    """One app's plugins: which are allowed, which loaded, and what they provide."""

    _REGISTRATION_HOOKS = {
        "transport": "petiole_transports",
        "result backend": "petiole_result_backends",
        "serializer": "petiole_serializers",
        "codec": "petiole_codecs",
        "signer": "petiole_signers",
        "pool": "petiole_pools",
    }

    def __init__(
        self,
        *,
        enabled: Sequence[str] | None = None,
        disabled: Sequence[str] = (),
        infos: Iterable[PluginInfo] | None = None,
    ) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self._enabled = set(enabled) | {BUILTINS} if enabled is not None else None
        self._disabled = set(disabled)
        self.infos: dict[str, PluginInfo] = {
            i.name: i for i in (discover() if infos is None else infos)
        }
        for info in self.infos.values():
            if not self.allowed(info.name):
                info.status = "disabled"
        self._warn_unknown_names(enabled or (), "plugins_enabled")
        self._warn_unknown_names(disabled, "plugins_disabled")
        self._lock = threading.RLock()
        self._cache: dict[str, _Registered] = {}
        self._warned: set[tuple[str, str]] = set()

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def _warn_unknown_names(self, names: Iterable[str], setting: str) -> None:
        """A name in ``setting`` that no installed plugin has: a typo there silently
        turns a plugin on or off."""
        known = [*self.infos, BUILTINS]
        for name in names:
            if name not in known:
                logger.warning(
                    "the %s setting names %r, which no installed plugin is called%s "
                    "(`petiole plugins` lists them)",
                    setting,
                    name,
                    did_you_mean(name, known),
                )

    def _why_disabled(self, info: PluginInfo) -> str:
        if info.name in self._disabled:
            setting = "it is in the plugins_disabled setting: take it out"
        else:
            setting = "the plugins_enabled setting leaves it out: add it"
        return (
            f"plugin {info.name!r} ({info.distribution}), which provides it, is installed "
            f"but disabled: {setting}"
        )

    def allowed(self, name: str) -> bool:
        if name in self._disabled:
            return False
        return self._enabled is None or name in self._enabled

    def load_all(self) -> None:
        with self._lock:
            for info in self.infos.values():
                if info.status == "not loaded":
                    self._load(info)

    def _load(self, info: PluginInfo) -> None:
        try:
            obj = _import_attribute(info.value)
            self.manager.register(obj, name=info.name)
        except Exception as exc:  # a plugin may fail in any way; isolate it
            info.status = "failed"
            info.error = PluginLoadError(info.name, info.distribution, exc)
            logger.warning("%s; it is skipped until fixed", info.error)
            return
        info.status = "loaded"
        info.hooks = sorted(
            hc.name
            for hc in self.manager.get_hookcallers(obj) or ()
            if hc.name.startswith("petiole_")
        )
        self._cache.clear()

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an in-process plugin object (tests, or an app's own hooks)."""
        with self._lock:
            registered = self.manager.register(plugin, name=name)
            label = registered or name or repr(plugin)
            self.infos[label] = PluginInfo(
                name=label,
                value=repr(plugin),
                distribution="(registered in code)",
                version="",
                status="loaded",
                hooks=sorted(hc.name for hc in self.manager.get_hookcallers(plugin) or ()),
            )
            self._cache.clear()

    # -- components --------------------------------------------------------

    @classmethod
    def kinds(cls) -> list[str]:
        """Every kind of component a plugin can register (``transport``, ``codec``...)."""
        return list(cls._REGISTRATION_HOOKS)

    def provided(self, kind: str) -> dict[str, Provided[Any]]:
        """Every component of ``kind`` the loaded plugins register, by name.

        A component registered as ``"module:attribute"`` is shown as that string
        until :meth:`get` first loads it. Raises :class:`PluginError` when two
        plugins register the same name (the listing could not say whose it is);
        :meth:`get` fails only for that name.
        """
        registered = self._registered(kind)
        if registered.conflicts:
            name, plugins = next(iter(registered.conflicts.items()))
            raise PluginError(_conflict(kind, name, plugins))
        return dict(registered.entries)

    def get(self, kind: str, name: str) -> Provided[Any]:
        """The component ``name`` of ``kind``, ready to use.

        Raises :class:`PluginLoadError` (naming the plugin and its distribution)
        when the component was named as ``"module:attribute"`` and does not load,
        :class:`PluginError` when two plugins register ``name``, and
        :class:`UnknownComponentError` when no plugin provides it — listing what
        is installed, which plugins failed (to import, or in this kind's hook),
        which are disabled, and which distribution would provide it.
        """
        registered = self._registered(kind)
        if name in registered.conflicts:
            raise PluginError(_conflict(kind, name, registered.conflicts[name]))
        found = registered.entries.get(name)
        if found is not None:
            if name not in registered.resolved:
                loaded = self._resolve(kind, found)
                with self._lock:  # another thread may have loaded it meanwhile: keep one
                    if name not in registered.resolved:
                        registered.entries[name] = loaded
                        registered.resolved.add(name)
                    found = registered.entries[name]
            return found
        provider = KNOWN_PROVIDERS.get((kind, name))
        hint = f"install it with: {install_command(provider)}" if provider else None
        reasons = [str(i.error) for i in self.infos.values() if i.status == "failed" and i.error]
        reasons += [str(failure) for failure in registered.failures]
        disabled = [i for i in self.infos.values() if i.status == "disabled"]
        held_back = [i for i in disabled if provider and i.distribution == provider]
        if held_back:  # installed: turned off, not missing
            hint = None
            reasons.append(self._why_disabled(held_back[0]))
        elif disabled:
            reasons.append(f"disabled plugins: {', '.join(i.name for i in disabled)}")
        raise UnknownComponentError(
            kind, name, installed=registered.entries, hint=hint, broken="; ".join(reasons) or None
        )

    def serializer_by_content_type(self, content_type: str) -> Provided[Any] | None:
        """The serializer for ``content_type`` (the first registered, in plugin order),
        or None. Serializers registered by name are loaded as needed to learn their
        content types; one that does not load is skipped (with a warning, once), so
        it costs only messages of its own content type."""
        registered = self._registered("serializer")
        found = registered.by_content_type.get(content_type)
        if found is not None:
            return found
        for name in list(registered.entries):
            if name in registered.conflicts:
                continue
            try:
                provided = self.get("serializer", name)
            except PluginError as exc:
                self._warn_once(("serializer", name), "serializer %r is skipped: %s", name, exc)
                continue
            if provided.component.content_type == content_type:
                registered.by_content_type[content_type] = provided
                return provided
        return None

    def cli_commands(self) -> list[Any]:
        """Every plugin's extra subcommands; a plugin whose hook fails is skipped
        (with a warning naming it) rather than taking the command line down."""
        self.load_all()
        commands: list[Any] = []
        # In pluggy's calling order (last registered first), as a hook call would give.
        for impl in reversed(self.manager.hook.petiole_cli_commands.get_hookimpls()):
            try:
                answer: Any = impl.function()
                commands.extend(answer or ())
            except Exception as exc:  # a plugin may fail in any way; isolate it
                error = self._hook_error(impl.plugin_name, "petiole_cli_commands", exc)
                self._warn_once((impl.plugin_name, "cli"), "%s; its commands are skipped", error)
        return commands

    def _registered(self, kind: str) -> _Registered:
        found = self._cache.get(kind)
        if found is None:
            with self._lock:
                self.load_all()
                found = self._cache.get(kind)
                if found is None:
                    found = self._cache[kind] = self._call_registration(kind)
        return found

    def _call_registration(self, kind: str) -> _Registered:
        hook_name = self._REGISTRATION_HOOKS[kind]
        registered = _Registered()
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
            plugin = impl.plugin_name
            info = self.infos.get(plugin)
            try:
                items = _registrations(kind, hook_name, impl.function())
            except Exception as exc:  # a plugin may fail in any way; it loses this kind only
                error = self._hook_error(plugin, hook_name, exc)
                registered.failures.append(error)
                if info is not None:
                    info.component_errors[kind] = error
                self._warn_once((plugin, hook_name), "%s; its %ss are skipped", error, kind)
                continue
            for name, component in items:
                earlier = registered.entries.get(name)
                if earlier is not None and earlier.plugin != plugin:
                    registered.conflicts.setdefault(name, [earlier.plugin]).append(plugin)
                    continue
                registered.entries[name] = Provided(name, component, plugin)
                if not _is_lazy(kind, component):
                    registered.resolved.add(name)
            if info is not None:
                info.components.setdefault(kind, sorted(n for n, _ in items))
        return registered

    def _resolve(self, kind: str, provided: Provided[Any]) -> Provided[Any]:
        """Load a component registered by name: the plugin's client library is
        imported when its component is first used, not when listed."""
        component = provided.component
        try:
            if isinstance(component, str):
                component = _import_attribute(component)
            if kind in _INSTANCE_KINDS:
                component = _instance(kind, provided.name, component)
            elif not callable(component):
                raise TypeError(f"the {kind} factory {provided.component!r} is not callable")
        except Exception as exc:  # a plugin may fail in any way; only this name fails
            distribution = self._distribution(provided.plugin)
            raise PluginLoadError(provided.plugin, distribution, exc) from exc
        return Provided(provided.name, component, provided.plugin)

    def _distribution(self, plugin: str) -> str:
        info = self.infos.get(plugin)
        return info.distribution if info is not None else "?"

    def _hook_error(self, plugin: str, hook_name: str, exc: BaseException) -> PluginError:
        error = PluginError(
            f"plugin {plugin!r} from distribution {self._distribution(plugin)!r} failed in "
            f"{hook_name}: {type(exc).__name__}: {exc}"
        )
        error.__cause__ = exc
        return error

    def _warn_once(self, key: tuple[str, str], message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)


def _import_attribute(path: str) -> Any:
    """The object ``"module:attribute.sub"`` names (``"module"`` alone: the module)."""
    module_name, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _registrations(kind: str, hook_name: str, answer: Any) -> list[tuple[str, Any]]:
    """``(name, component)`` pairs from a registration hook's answer, checked.

    Every hook answers a mapping of names to components or ``"module:attribute"``
    strings; ``petiole_serializers`` may also answer a sequence of serializers.
    """
    if answer is None:
        return []
    if kind == "serializer" and isinstance(answer, Sequence) and not isinstance(answer, str):
        items = []
        for serializer in answer:
            if not _is_built_serializer(serializer):
                raise TypeError(f"{hook_name} answered {serializer!r}, which is not a serializer")
            items.append((serializer.name, serializer))
        return items
    if not isinstance(answer, Mapping):
        raise TypeError(
            f"{hook_name} must answer a mapping of names to components or "
            f"'module:attribute' strings, not {type(answer).__name__}"
        )
    for name, component in answer.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{hook_name} answered the name {name!r}; names are non-empty strings")
        if kind == "serializer" and _is_built_serializer(component) and component.name != name:
            raise TypeError(f"{hook_name} answered serializer {component.name!r} as {name!r}")
        if kind == "codec" and _is_built_codec(component) and component.name != name:
            raise TypeError(f"{hook_name} answered codec {component.name!r} as {name!r}")
        if not (
            isinstance(component, str) or callable(component) or kind in ("serializer", "codec")
        ):
            raise TypeError(f"{hook_name} answered {component!r} for {name!r}: not callable")
    return list(answer.items())


def _is_built_serializer(component: Any) -> bool:
    """A serializer instance, as opposed to its class (which passes ``isinstance`` too)."""
    return isinstance(component, Serializer) and not isinstance(component, type)


def _is_built_codec(component: Any) -> bool:
    """A codec instance, as opposed to its class."""
    return isinstance(component, Codec) and not isinstance(component, type)


def _is_lazy(kind: str, component: Any) -> bool:
    """Whether ``component`` must be loaded (imported, or built) before use."""
    if isinstance(component, str):
        return True
    # A serializer or codec may be registered as its class or another factory,
    # built on first use.
    if kind == "serializer":
        return not _is_built_serializer(component)
    if kind == "codec":
        return not _is_built_codec(component)
    return False


# Kinds registered as built instances (or their factories), not as factories the
# core calls with a URL: what an instance of each has, for the error that says so.
_INSTANCE_KINDS: dict[str, tuple[type, str]] = {
    "serializer": (Serializer, "name, content_type, dumps, loads"),
    "codec": (Codec, "name, encode, decode"),
}


def _instance(kind: str, name: str, found: Any) -> Any:
    """The serializer or codec ``found`` is, or builds (a class, or a callable taking
    no arguments); its ``name`` must be the one it is registered under."""
    protocol, has = _INSTANCE_KINDS[kind]

    def built(value: Any) -> bool:
        return isinstance(value, protocol) and not isinstance(value, type)

    if not built(found):
        if not callable(found):
            raise TypeError(f"{found!r} is neither a {kind} nor a factory of one")
        found = found()
    if not built(found):
        raise TypeError(
            f"{kind} {name!r} was built as {found!r}, which lacks what a {kind} has ({has})"
        )
    if found.name != name:
        raise TypeError(f"{kind} {name!r} calls itself {found.name!r}; names must match")
    return found


def _conflict(kind: str, name: str, plugins: Sequence[str]) -> str:
    *others, last = [repr(p) for p in plugins]
    claimants = f"{', '.join(others)} and {last}"
    count = "two plugins" if len(plugins) == 2 else f"{len(plugins)} plugins"
    return (
        f"{kind} {name!r} is registered by {count}, {claimants}; disable all but one "
        "with the plugins_disabled setting"
    )


def implemented(caller: Any) -> Callable[..., Any] | None:
    """The hook caller if any plugin implements it, else None: per-task hooks are
    guarded by this so that an unimplemented hook costs one ``is None`` test."""
    return caller if caller.get_hookimpls() else None
