"""A plugin that fails costs only the components it fails for.

The plugins here are real: modules written to a temporary directory and named
by fake entry-point infos (so errors can name their distribution), or objects
registered in code as an app's own hooks would be.
"""

from __future__ import annotations

import logging
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import pytest

from petiole import Petiole, hookimpl
from petiole.errors import PluginError, PluginLoadError, UnknownComponentError
from petiole.plugins import PluginInfo, PluginRegistry
from petiole.serializers import JsonSerializer

Write = Callable[[str, str], str]


def _builtins() -> PluginInfo:
    return PluginInfo("builtins", "petiole._builtins.plugin", "petiole", "0.1.0")


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Write]:
    """Writes a module under a fresh name (``stem`` plus a suffix) on sys.path; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(stem: str, source: str) -> str:
        name = f"{stem}_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def _registry(write: Write, source: str, *, distribution: str = "petiole-shaky") -> PluginRegistry:
    """The built-ins and one plugin, ``shaky``, whose hook module is ``source``."""
    module = write("petiole_shaky_plugin", source)
    shaky = PluginInfo("shaky", module, distribution, "1.0")
    return PluginRegistry(infos=[_builtins(), shaky])


def _answering(**answers: object) -> str:
    """The source of a plugin module whose hooks, named without ``petiole_``, return
    ``answers``: ``_answering(transports={"x": "m:f"})``."""
    hooks = [
        f"@hookimpl\ndef petiole_{hook}():\n    return {answer!r}\n"
        for hook, answer in answers.items()
    ]
    return "\n".join(["from petiole import hookimpl\n", *hooks])


_SERIALIZER_HOOK_RAISES = """
    from petiole import hookimpl

    @hookimpl
    def petiole_serializers():
        raise RuntimeError("the serializer table is corrupt")

    @hookimpl
    def petiole_transports():
        return {"shaky": "petiole._builtins.memory:create_transport"}
"""


# -- a registration hook that raises ------------------------------------------------


def test_a_serializer_hook_that_raises_leaves_every_other_serializer_working(
    write_module: Write,
) -> None:
    registry = _registry(write_module, _SERIALIZER_HOOK_RAISES)

    assert isinstance(registry.get("serializer", "json").component, JsonSerializer)
    assert registry.get("serializer", "pickle").plugin == "builtins"
    found = registry.serializer_by_content_type("application/json")
    assert found is not None
    assert found.name == "json"


def test_a_serializer_hook_that_raises_costs_its_plugin_no_other_kind(write_module: Write) -> None:
    registry = _registry(write_module, _SERIALIZER_HOOK_RAISES)

    assert registry.get("transport", "shaky").plugin == "shaky"
    assert set(registry.provided("transport")) >= {"memory", "sqlite", "shaky"}


def test_asking_for_a_missing_serializer_names_the_failed_hook_and_distribution(
    write_module: Write,
) -> None:
    registry = _registry(write_module, _SERIALIZER_HOOK_RAISES)

    with pytest.raises(UnknownComponentError) as info:
        registry.get("serializer", "msgpack")
    message = str(info.value)
    assert "installed: json, pickle" in message
    assert "plugin 'shaky' from distribution 'petiole-shaky' failed in petiole_serializers" in (
        message
    )
    assert "RuntimeError: the serializer table is corrupt" in message


def test_a_failed_hook_is_reported_only_for_its_own_kind(write_module: Write) -> None:
    registry = _registry(write_module, _SERIALIZER_HOOK_RAISES)
    registry.provided("serializer")

    with pytest.raises(UnknownComponentError) as info:
        registry.get("transport", "nowhere")
    assert "petiole_serializers" not in str(info.value)
    assert list(registry.infos["shaky"].component_errors) == ["serializer"]
    assert registry.infos["shaky"].status == "loaded"


def test_a_failed_hook_is_logged_once_naming_plugin_and_distribution(
    write_module: Write, caplog: pytest.LogCaptureFixture
) -> None:
    registry = _registry(write_module, _SERIALIZER_HOOK_RAISES)

    with caplog.at_level(logging.WARNING, logger="petiole.plugins"):
        for _ in range(3):
            registry.provided("serializer")
            with pytest.raises(UnknownComponentError):
                registry.get("serializer", "msgpack")
    [warning] = [r.getMessage() for r in caplog.records]
    assert "'shaky' from distribution 'petiole-shaky' failed in petiole_serializers" in warning


class _RaisingSerializers:
    @hookimpl
    def petiole_serializers(self) -> Any:
        raise RuntimeError("boom")


def test_an_app_with_a_raising_serializer_hook_still_runs_on_json_and_memory(
    app: Petiole,
) -> None:
    app.register_plugin(_RaisingSerializers(), "raising")

    assert app.serializer("json").loads(app.serializer("json").dumps({"a": [1]})) == {"a": [1]}
    app.transport.publish("q", b"payload")
    assert app.transport.size("q") == 1
    assert app.accepted_content_types() == frozenset({"application/json"})
    with pytest.raises(UnknownComponentError, match=r"'raising' .* RuntimeError: boom"):
        app.serializer("no-such-serializer")


def test_a_hook_answering_something_that_is_no_registration_costs_only_that_kind(
    write_module: Write,
) -> None:
    # A list where a mapping of schemes to factories belongs.
    registry = _registry(write_module, _answering(transports=["redis"]))

    assert registry.get("transport", "memory").plugin == "builtins"
    with pytest.raises(UnknownComponentError, match="must answer a mapping"):
        registry.get("transport", "redis")


# -- a serializer named as "module:attribute" ------------------------------------------


_GHOST_SERIALIZER = _answering(
    serializers={"ghost": "petiole_no_such_module.serializer:GhostSerializer"}
)


def test_a_serializer_naming_a_missing_module_fails_only_its_own_lookups(
    write_module: Write,
) -> None:
    registry = _registry(write_module, _GHOST_SERIALIZER)

    assert registry.provided("serializer")["ghost"].component == (
        "petiole_no_such_module.serializer:GhostSerializer"
    )
    assert isinstance(registry.get("serializer", "json").component, JsonSerializer)
    with pytest.raises(PluginLoadError) as info:
        registry.get("serializer", "ghost")
    assert info.value.plugin == "shaky"
    assert info.value.distribution == "petiole-shaky"
    assert isinstance(info.value.error, ModuleNotFoundError)
    assert "from distribution 'petiole-shaky' failed to load: ModuleNotFoundError" in str(
        info.value
    )


def test_content_type_lookup_skips_a_serializer_that_does_not_load(
    write_module: Write, caplog: pytest.LogCaptureFixture
) -> None:
    registry = _registry(write_module, _GHOST_SERIALIZER)

    with caplog.at_level(logging.WARNING, logger="petiole.plugins"):
        assert registry.serializer_by_content_type("application/x-ghost") is None
        assert registry.serializer_by_content_type("application/x-ghost") is None
        found = registry.serializer_by_content_type("application/x-python-pickle")
    assert found is not None
    assert found.name == "pickle"
    [warning] = [r.getMessage() for r in caplog.records]
    assert "serializer 'ghost' is skipped" in warning
    assert "petiole-shaky" in warning


class _GhostSerializers:
    @hookimpl
    def petiole_serializers(self) -> Mapping[str, str]:
        return {"ghost": "petiole_no_such_module.serializer:GhostSerializer"}


def test_an_app_with_a_broken_lazy_serializer_still_serializes_json(app: Petiole) -> None:
    app.register_plugin(_GhostSerializers(), "ghosts")

    assert app.serializer("json").dumps([1]) == b"[1]"
    assert app.serializer_for_content_type("application/json").name == "json"
    with pytest.raises(PluginLoadError, match=r"'ghosts' .* ModuleNotFoundError"):
        app.serializer("ghost")


_ROT13_MODULE = """
    import codecs

    BUILT = []

    class Rot13Serializer:
        name = "rot13"
        content_type = "text/x-rot13"

        def __init__(self):
            BUILT.append(self)

        def dumps(self, value):
            return codecs.encode(value, "rot13").encode()

        def loads(self, data):
            return codecs.decode(data.decode(), "rot13")
"""


def _rot13_registry(write: Write, *, name: str = "rot13") -> tuple[str, PluginRegistry]:
    """A module of :data:`_ROT13_MODULE`, and a registry whose plugin names its
    serializer by path under ``name``."""
    module = write("petiole_rot13", _ROT13_MODULE)
    return module, _registry(write, _answering(serializers={name: f"{module}:Rot13Serializer"}))


def test_a_serializer_named_by_path_is_imported_and_built_once_on_first_use(
    write_module: Write,
) -> None:
    module, registry = _rot13_registry(write_module)

    assert "rot13" in registry.provided("serializer")
    assert module not in sys.modules
    serializer = registry.get("serializer", "rot13").component
    assert serializer.loads(serializer.dumps("petiole")) == "petiole"
    assert serializer.dumps("abc") == b"nop"
    by_type = registry.serializer_by_content_type("text/x-rot13")
    assert by_type is not None
    assert by_type.component is serializer
    built = sys.modules[module].BUILT
    assert built == [serializer]


def test_a_serializer_found_by_content_type_is_loaded_for_it(write_module: Write) -> None:
    _, registry = _rot13_registry(write_module)

    found = registry.serializer_by_content_type("text/x-rot13")
    assert found is not None
    assert (found.name, found.plugin) == ("rot13", "shaky")


def test_a_serializer_registered_under_another_name_than_its_own_is_refused(
    write_module: Write,
) -> None:
    _, registry = _rot13_registry(write_module, name="caesar")

    with pytest.raises(PluginLoadError, match="serializer 'caesar' calls itself 'rot13'"):
        registry.get("serializer", "caesar")
    assert registry.get("serializer", "json").name == "json"


# -- a transport whose factory does not import ---------------------------------------


def _flaky_transport_registry(write: Write) -> PluginRegistry:
    factory = write(
        "petiole_flaky_transport",
        """
        import petiole_flaky_client_not_installed  # the client library, missing

        def create_transport(url, options):
            raise AssertionError("never reached")
        """,
    )
    source = _answering(
        transports={"flaky": f"{factory}:create_transport"},
        result_backends={"flaky": "petiole._builtins.memory:create_backend"},
    )
    return _registry(write, source, distribution="petiole-flaky")


def test_a_transport_whose_module_fails_to_import_fails_only_its_scheme(
    write_module: Write,
) -> None:
    registry = _flaky_transport_registry(write_module)

    with pytest.raises(PluginLoadError) as info:
        registry.get("transport", "flaky")
    assert "plugin 'shaky' from distribution 'petiole-flaky' failed to load" in str(info.value)
    assert "petiole_flaky_client_not_installed" in str(info.value)
    transport = registry.get("transport", "memory").component(f"memory://{uuid.uuid4().hex}", {})
    transport.publish("q", b"still works")
    assert transport.size("q") == 1
    transport.close()
    assert registry.get("result backend", "flaky").plugin == "shaky"


def test_a_failed_factory_import_is_reported_again_on_each_use(write_module: Write) -> None:
    registry = _flaky_transport_registry(write_module)

    for _ in range(2):
        with pytest.raises(PluginLoadError, match="ModuleNotFoundError"):
            registry.get("transport", "flaky")


class _FlakyTransports:
    @hookimpl
    def petiole_transports(self) -> Mapping[str, str]:
        return {"flaky": "petiole_flaky_client_not_installed.transport:create_transport"}


def test_an_app_whose_broker_plugin_fails_keeps_its_backend_and_serializers() -> None:
    store = f"memory://{uuid.uuid4().hex}"
    app = Petiole("t", broker="flaky://host", backend=store, config_file="/dev/null")
    app.register_plugin(_FlakyTransports(), "flaky")

    with pytest.raises(PluginLoadError, match=r"plugin 'flaky' .* ModuleNotFoundError"):
        _ = app.transport
    assert app.serializer("json").name == "json"
    assert app.backend.get("unknown-task") is None
    app.close()


# -- names claimed twice, and command-line hooks ----------------------------------------


class _SqliteClaimer:
    @hookimpl
    def petiole_transports(self) -> Mapping[str, Any]:
        return {"sqlite": "petiole._builtins.memory:create_transport"}


def test_a_scheme_two_plugins_claim_fails_only_that_scheme() -> None:
    registry = PluginRegistry(infos=[_builtins()])
    registry.register(_SqliteClaimer(), "claimer")

    with pytest.raises(PluginError, match="'sqlite' is registered by two plugins"):
        registry.get("transport", "sqlite")
    assert registry.get("transport", "memory").plugin == "builtins"


@click.command(name="shaky-hello")
def _hello() -> None:
    click.echo("hello")


class _GoodCommands:
    @hookimpl
    def petiole_cli_commands(self) -> list[click.Command]:
        return [_hello]


class _RaisingCommands:
    @hookimpl
    def petiole_cli_commands(self) -> list[click.Command]:
        raise RuntimeError("no commands today")


def test_a_cli_commands_hook_that_raises_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = PluginRegistry(infos=[_builtins()])
    registry.register(_GoodCommands(), "good")
    registry.register(_RaisingCommands(), "raising")

    with caplog.at_level(logging.WARNING, logger="petiole.plugins"):
        assert registry.cli_commands() == [_hello]
    [warning] = [r.getMessage() for r in caplog.records]
    assert "plugin 'raising'" in warning
    assert "RuntimeError: no commands today" in warning


def test_petiole_plugins_shows_the_component_kind_that_failed(
    write_module: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from petiole.cli import cli
    from petiole.cli.context import CliState

    registry = _registry(write_module, _SERIALIZER_HOOK_RAISES)
    app = Petiole("shaky", broker="memory://", backend="memory://", config_file="/dev/null")
    app._plugins = registry  # the registry built from the fake entry points above
    monkeypatch.setattr(CliState, "app", lambda self: app)
    out = CliRunner().invoke(cli, ["plugins"]).output
    assert "serializers failed:" in out
    assert "petiole-shaky" in out
