"""Plugin discovery and loading, isolated so one broken plugin cannot break start-up.

Plugins are entry points in the group ``petiole``; the entry point's name is the
plugin's name. Discovery reads only entry point metadata. Loading imports the
entry point's module and registers it with a pluggy ``PluginManager``; a module
that fails to import is logged once (naming the plugin, its distribution and the
error) and skipped, and asking for a component it would have provided raises an
error that repeats why. Plugin modules are kept thin (hook implementations only),
so loading them is cheap; each component's client library is imported when its
factory is first called.
"""

from __future__ import annotations

import importlib
import logging
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

import pluggy

from petiole import hookspecs
from petiole.errors import PluginError, PluginLoadError, UnknownComponentError

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


@dataclass(frozen=True)
class Provided(Generic[T]):
    """A component and the plugin that registered it."""

    name: str
    component: T
    plugin: str


def discover() -> list[PluginInfo]:
    """Entry points of the group, without importing any of them."""
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


class PluginRegistry:
    """One app's plugins: which are allowed, which loaded, and what they provide."""

    _REGISTRATION_HOOKS = {
        "transport": "petiole_transports",
        "result backend": "petiole_result_backends",
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
        self._cache: dict[str, dict[str, Provided[Any]]] = {}

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def allowed(self, name: str) -> bool:
        if name in self._disabled:
            return False
        return self._enabled is None or name in self._enabled

    def load_all(self) -> None:
        for info in self.infos.values():
            if info.status == "not loaded":
                self._load(info)

    def _load(self, info: PluginInfo) -> None:
        module_name, _, attr = info.value.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
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

    def provided(self, kind: str) -> dict[str, Provided[Any]]:
        """Every component of ``kind`` the loaded plugins register, by name."""
        if kind in self._cache:
            return self._cache[kind]
        self.load_all()
        out: dict[str, Provided[Any]] = {}
        for plugin_name, items in self._call_registration(kind):
            for name, component in items:
                if name in out and out[name].plugin != plugin_name:
                    raise PluginError(
                        f"{kind} {name!r} is registered by two plugins, {out[name].plugin!r} and "
                        f"{plugin_name!r}; disable one with the plugins_disabled setting"
                    )
                out[name] = Provided(name, component, plugin_name)
        self._cache[kind] = out
        return out

    def _call_registration(self, kind: str) -> list[tuple[str, list[tuple[str, Any]]]]:
        hook_name = self._REGISTRATION_HOOKS.get(kind, "petiole_serializers")
        caller = getattr(self.manager.hook, hook_name)
        results: list[tuple[str, list[tuple[str, Any]]]] = []
        for impl in caller.get_hookimpls():
            try:
                answer = impl.function()
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if answer is None:
                continue
            if kind == "serializer":
                items = [(s.name, s) for s in answer]
            else:
                items = list(dict(answer).items())
            results.append((impl.plugin_name, items))
        for plugin_name, items in results:
            info = self.infos.get(plugin_name)
            if info is not None:
                info.components.setdefault(kind, sorted(n for n, _ in items))
        return results

    def get(self, kind: str, name: str) -> Provided[Any]:
        """The component ``name`` of ``kind``, or :class:`UnknownComponentError`
        listing what is installed and which distribution would provide it."""
        available = self.provided(kind)
        if name in available:
            found = available[name]
            if isinstance(found.component, str):
                found = Provided(name, self._resolve(found), found.plugin)
                available[name] = found
            return found
        provider = KNOWN_PROVIDERS.get((kind, name))
        hint = f"install it with: {install_command(provider)}" if provider else None
        broken = "; ".join(
            str(i.error) for i in self.infos.values() if i.status == "failed" and i.error
        )
        disabled = [i.name for i in self.infos.values() if i.status == "disabled"]
        if disabled:
            broken = "; ".join(filter(None, [broken, f"disabled plugins: {', '.join(disabled)}"]))
        raise UnknownComponentError(
            kind, name, installed=available, hint=hint, broken=broken or None
        )

    def _resolve(self, provided: Provided[Any]) -> Any:
        """Import a factory registered as ``"module:attribute"``: the plugin's client
        library is imported when its component is first used, not when listed."""
        module_name, _, attr = str(provided.component).partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
        except Exception as exc:
            info = self.infos.get(provided.plugin)
            distribution = info.distribution if info is not None else "?"
            raise PluginLoadError(provided.plugin, distribution, exc) from exc
        return obj

    def serializer_by_content_type(self, content_type: str) -> Provided[Any] | None:
        for provided in self.provided("serializer").values():
            if provided.component.content_type == content_type:
                return provided
        return None

    def cli_commands(self) -> list[Any]:
        self.load_all()
        commands: list[Any] = []
        for answer in self.manager.hook.petiole_cli_commands():
            commands.extend(answer or ())
        return commands


def implemented(caller: Any) -> Callable[..., Any] | None:
    """The hook caller if any plugin implements it, else None: per-task hooks are
    guarded by this so that an unimplemented hook costs one ``is None`` test."""
    return caller if caller.get_hookimpls() else None
