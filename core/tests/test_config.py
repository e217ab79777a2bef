from __future__ import annotations

import os
from pathlib import Path

import pytest

from petiole.config import Settings, load_settings
from petiole.errors import ConfigError, SettingTypeError, UnknownSettingError


def test_defaults_use_the_embedded_sqlite_for_broker_and_results(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.broker_url == "sqlite://"
    assert settings.backend_url == "sqlite://"
    assert settings.accept_content == ["json"]


def test_precedence_is_file_then_environment_then_keywords(tmp_path: Path) -> None:
    (tmp_path / "petiole.toml").write_text(
        'default_queue = "from-file"\nlease_s = 5\nmax_deliveries = 3\n'
    )
    env = {"PETIOLE_LEASE_S": "7", "PETIOLE_MAX_DELIVERIES": "4"}
    settings = load_settings({"max_deliveries": 9}, environ=env, cwd=tmp_path)
    assert settings.default_queue == "from-file"
    assert settings.lease_s == 7.0
    assert settings.max_deliveries == 9


def test_pyproject_tool_table_is_read_when_there_is_no_petiole_toml(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.petiole]\nbroker_url = "memory://"\n'
    )
    assert load_settings(environ={}, cwd=tmp_path).broker_url == "memory://"


def test_petiole_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.petiole]\ndefault_queue = "py"\n')
    (tmp_path / "petiole.toml").write_text('default_queue = "toml"\n')
    assert load_settings(environ={}, cwd=tmp_path).default_queue == "toml"


def test_config_env_variable_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('default_queue = "named"\n')
    settings = load_settings(environ={"PETIOLE_CONFIG": str(path)}, cwd=tmp_path / "nowhere")
    assert settings.default_queue == "named"


def test_missing_named_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_settings(environ={"PETIOLE_CONFIG": str(tmp_path / "missing.toml")}, cwd=tmp_path)


def test_an_empty_config_file_or_devnull_sets_nothing(tmp_path: Path) -> None:
    (tmp_path / "petiole.toml").write_bytes(b"")
    assert load_settings(environ={}, cwd=tmp_path) == load_settings(
        environ={}, config_file=os.devnull, cwd=tmp_path
    )
    assert load_settings(environ={}, config_file=os.devnull, cwd=tmp_path).broker_url == "sqlite://"


def test_malformed_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "petiole.toml").write_text("default_queue = \n")
    with pytest.raises(ConfigError, match=r"cannot read config file .*petiole\.toml"):
        load_settings(environ={}, cwd=tmp_path)


def test_unknown_key_in_file_suggests_the_closest_setting(tmp_path: Path) -> None:
    (tmp_path / "petiole.toml").write_text('brokr_url = "memory://"\n')
    with pytest.raises(UnknownSettingError) as info:
        load_settings(environ={}, cwd=tmp_path)
    assert "brokr_url" in str(info.value)
    assert "broker_url" in str(info.value)
    assert "petiole.toml" in str(info.value)


def test_celery_names_are_read_as_ours_or_pointed_at_them() -> None:
    assert load_settings({"result_backend": "memory://"}, environ={}).backend_url == "memory://"
    with pytest.raises(UnknownSettingError, match="is spelled `shutdown_timeout_s` in Petiole"):
        load_settings({"worker_soft_shutdown_timeout": 5}, environ={})


def test_wrong_type_names_key_source_and_expected_type(tmp_path: Path) -> None:
    (tmp_path / "petiole.toml").write_text('lease_s = "long"\n')
    with pytest.raises(SettingTypeError) as info:
        load_settings(environ={}, cwd=tmp_path)
    message = str(info.value)
    assert "lease_s" in message
    assert "number" in message
    assert "'long'" in message


def test_boolean_is_not_accepted_for_a_number() -> None:
    with pytest.raises(SettingTypeError, match="max_deliveries"):
        load_settings({"max_deliveries": True}, environ={})


def test_environment_values_are_parsed_by_type() -> None:
    env = {
        "PETIOLE_ACCEPT_CONTENT": "json, pickle",
        "PETIOLE_EAGER": "yes",
        "PETIOLE_BROKER_OPTIONS": '{"poll_interval_ms": 10}',
        "PETIOLE_PLUGINS_ENABLED": "redis",
    }
    settings = load_settings(environ=env)
    assert settings.accept_content == ["json", "pickle"]
    assert settings.eager is True
    assert settings.broker_options == {"poll_interval_ms": 10}
    assert settings.plugins_enabled == ["redis"]


def test_celery_s_broker_and_backend_variables_are_read_unless_petiole_s_are_set() -> None:
    """A Celery deployment's environment keeps working: a worker must not fall back
    to a local SQLite file while CELERY_BROKER_URL names the broker."""
    celery = {"CELERY_BROKER_URL": "redis://h:1/0", "CELERY_RESULT_BACKEND": "redis://h:1/1"}
    settings = load_settings(environ=celery)
    assert (settings.broker_url, settings.backend_url) == ("redis://h:1/0", "redis://h:1/1")
    both = {**celery, "PETIOLE_BROKER_URL": "redis://p:2/0"}
    assert load_settings(environ=both).broker_url == "redis://p:2/0"


def test_a_config_file_s_broker_wins_over_a_leftover_celery_variable(tmp_path: Path) -> None:
    """Celery's variables sit below every Petiole source: a migrated project's
    petiole.toml is not overridden by an old CELERY_BROKER_URL still exported."""
    config = tmp_path / "petiole.toml"
    config.write_text('broker_url = "redis://file:3/0"\n')
    environ = {"CELERY_BROKER_URL": "redis://old:1/0"}
    assert load_settings(environ=environ, config_file=config).broker_url == "redis://file:3/0"


def test_unparseable_environment_value_names_the_variable() -> None:
    with pytest.raises(SettingTypeError, match="PETIOLE_LEASE_S"):
        load_settings(environ={"PETIOLE_LEASE_S": "soon"})


def test_unknown_environment_variable_suggests_the_right_one() -> None:
    with pytest.raises(UnknownSettingError, match="PETIOLE_LEASE_S"):
        load_settings(environ={"PETIOLE_LEASE_SECS": "3"})


def test_test_tooling_variables_are_not_settings() -> None:
    settings = load_settings(environ={"PETIOLE_TEST_REDIS_URL": "redis://x", "PETIOLE_APP": "a"})
    assert isinstance(settings, Settings)


def test_queues_default_to_the_default_queue() -> None:
    assert load_settings({"default_queue": "q"}, environ={}).queues == ["q"]
    assert load_settings({"worker_queues": ["a", "b"]}, environ={}).queues == ["a", "b"]


def test_a_config_file_that_is_not_utf8_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "petiole.toml").write_bytes(b'default_queue = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"cannot read config file .*petiole\.toml"):
        load_settings(environ={}, cwd=tmp_path)
