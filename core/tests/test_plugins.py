from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from petiole import Petiole, hookimpl
from petiole.errors import PluginError, UnknownComponentError
from petiole.plugins import PluginInfo, PluginRegistry, discover


def _builtins() -> PluginInfo:
    return PluginInfo("builtins", "petiole._builtins.plugin", "petiole", "0.1.0")


def _broken() -> PluginInfo:
    return PluginInfo("redis", "petiole_redis_not_installed.plugin", "petiole-redis", "9.9")


def test_builtins_are_declared_through_the_entry_point_group() -> None:
    infos = {i.name: i for i in discover()}
    assert infos["builtins"].value == "petiole._builtins.plugin"
    assert infos["builtins"].distribution == "petiole"


def test_builtin_components_are_registered_through_the_hooks() -> None:
    registry = PluginRegistry(infos=[_builtins()])
    assert {"sqlite", "memory"} <= set(registry.provided("transport"))
    assert {"sqlite", "memory"} <= set(registry.provided("result backend"))
    assert {"json", "pickle"} <= set(registry.provided("serializer"))
    assert {"solo", "threads", "processes"} <= set(registry.provided("pool"))
    assert registry.get("transport", "sqlite").plugin == "builtins"


def test_a_plugin_that_fails_to_import_warns_once_and_the_rest_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="petiole.plugins"):
        registry = PluginRegistry(infos=[_builtins(), _broken()])
        registry.load_all()
        registry.load_all()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "petiole-redis" in warnings[0]
    assert "ModuleNotFoundError" in warnings[0]
    assert registry.infos["redis"].status == "failed"
    assert "sqlite" in registry.provided("transport")


def test_using_a_component_of_a_broken_plugin_repeats_why() -> None:
    registry = PluginRegistry(infos=[_builtins(), _broken()])
    with pytest.raises(UnknownComponentError) as info:
        registry.get("transport", "redis")
    message = str(info.value)
    assert "installed: memory, sqlite" in message
    assert "petiole-redis" in message
    assert "failed to load" in message


def test_unknown_scheme_lists_installed_ones_and_the_package_to_install() -> None:
    registry = PluginRegistry(infos=[_builtins()])
    with pytest.raises(UnknownComponentError) as info:
        registry.get("transport", "sqs")
    assert "installed: memory, sqlite" in str(info.value)
    assert "install it with: pip install" in str(info.value)
    assert "petiole-sqs" in str(info.value)


def test_a_misspelt_scheme_suggests_the_installed_one() -> None:
    registry = PluginRegistry(infos=[_builtins()])
    with pytest.raises(
        UnknownComponentError, match=r"'sqlit' is installed \(did you mean 'sqlite'\?\)"
    ):
        registry.get("transport", "sqlit")


def test_disabled_plugins_are_not_imported_and_are_reported() -> None:
    registry = PluginRegistry(infos=[_builtins(), _broken()], disabled=["redis"])
    registry.load_all()
    assert registry.infos["redis"].status == "disabled"
    with pytest.raises(UnknownComponentError) as caught:
        registry.get("transport", "redis")
    said = str(caught.value)
    assert "plugin 'redis' (petiole-redis), which provides it, is installed but disabled" in said
    assert "it is in the plugins_disabled setting: take it out" in said
    assert "pip install" not in said  # installed already


def test_allow_list_loads_only_named_plugins_and_builtins() -> None:
    registry = PluginRegistry(infos=[_builtins(), _broken()], enabled=[])
    registry.load_all()
    assert registry.infos["redis"].status == "disabled"
    assert registry.infos["builtins"].status == "loaded"
    with pytest.raises(UnknownComponentError, match="the plugins_enabled setting leaves it out"):
        registry.get("transport", "redis")


def test_a_setting_naming_no_installed_plugin_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="petiole.plugins"):
        PluginRegistry(infos=[_builtins(), _broken()], enabled=["rediss"], disabled=["redis"])
    [warning] = caplog.records
    assert warning.getMessage() == (
        "the plugins_enabled setting names 'rediss', which no installed plugin is called "
        "(did you mean 'redis'?) (`petiole plugins` lists them)"
    )


def test_two_plugins_claiming_one_scheme_is_an_error_naming_both() -> None:
    registry = PluginRegistry(infos=[_builtins()])
    registry.register(_SqliteClaimer(), "claimer")
    with pytest.raises(PluginError, match=r"'builtins' and 'claimer'|'claimer' and 'builtins'"):
        registry.provided("transport")


class _SqliteClaimer:
    @hookimpl
    def petiole_transports(self) -> Mapping[str, Any]:
        return {"sqlite": lambda url, options: None}


def test_app_settings_disable_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PETIOLE_PLUGINS_DISABLED", "builtins")
    app = Petiole("t")
    assert app.plugins.infos["builtins"].status == "disabled"
    with pytest.raises(UnknownComponentError, match="disabled plugins: builtins"):
        app.serializer("json")


class _Recorder:
    def __init__(self) -> None:
        self.configured: list[Petiole] = []

    @hookimpl
    def petiole_app_configured(self, app: Petiole) -> None:
        self.configured.append(app)


def test_in_code_plugins_receive_app_configured_once() -> None:
    recorder = _Recorder()
    app = Petiole("t", broker="memory://", backend="memory://")
    app.register_plugin(recorder, "recorder")
    _ = app.plugins
    _ = app.plugins
    assert recorder.configured == [app]
    assert app.plugins.infos["recorder"].hooks == ["petiole_app_configured"]


class _LazyBroken:
    @hookimpl
    def petiole_transports(self) -> Mapping[str, Any]:
        return {"lazy": "petiole_no_such_client.transport:create_transport"}


def test_factories_named_by_path_are_imported_only_when_used() -> None:
    registry = PluginRegistry(infos=[_builtins()])
    registry.register(_LazyBroken(), "lazy")
    assert registry.provided("transport")["lazy"].component == (
        "petiole_no_such_client.transport:create_transport"
    )
    with pytest.raises(PluginError, match=r"plugin 'lazy' .* failed to load: ModuleNotFoundError"):
        registry.get("transport", "lazy")
    assert callable(registry.get("transport", "sqlite").component)
