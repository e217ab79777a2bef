"""values_from_object: settings from a module, class, object or mapping, with
Celery's names and namespace, validated like every other source."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from petiole.celery_names import CelerySpellingError
from petiole.config import values_from_object
from petiole.errors import ConfigError, SettingTypeError, UnknownSettingError

Module = Callable[[str], str]


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Module]:
    """Writes a settings module under a fresh name and returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(source: str) -> str:
        name = f"settings_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        made.append(name)
        return name

    yield make
    for name in made:
        sys.modules.pop(name, None)


def test_a_module_named_by_its_path_gives_its_settings(module: Module) -> None:
    name = module('broker_url = "memory://x"\nlease_s = 10\n')
    assert values_from_object(name) == {"broker_url": "memory://x", "lease_s": 10.0}


def test_a_module_object_gives_its_settings() -> None:
    settings = ModuleType("proj_settings")
    settings.default_queue = "work"  # type: ignore[attr-defined]
    assert values_from_object(settings) == {"default_queue": "work"}


def test_a_class_gives_its_settings_in_either_case_and_under_celery_s_names() -> None:
    class Config:
        BROKER_URL = "memory://b"  # Celery's old name, spelled as Petiole's in capitals
        LEASE_S = 5
        result_backend = "memory://r"
        CELERYD_CONCURRENCY = 3

    assert values_from_object(Config) == {
        "broker_url": "memory://b",
        "lease_s": 5.0,
        "backend_url": "memory://r",
        "worker_concurrency": 3,
    }


def test_an_instance_and_a_mapping_give_their_settings() -> None:
    class Config:
        def __init__(self) -> None:
            self.eager = True

        def helper(self) -> None:  # a method is no setting
            return None

    assert values_from_object(Config()) == {"eager": True}
    assert values_from_object({"task_always_eager": True}) == {"eager": True}


def test_a_namespace_reads_only_the_names_it_prefixes(module: Module) -> None:
    name = module(
        """
        DEBUG = True
        INSTALLED_APPS = ["proj.users"]
        CELERY_BROKER_URL = "memory://django"
        CELERY_TASK_ALWAYS_EAGER = True
        CELERY_RESULT_EXPIRES = 60
        """
    )
    assert values_from_object(name, namespace="CELERY") == {
        "broker_url": "memory://django",
        "eager": True,
        "result_ttl_s": 60.0,
    }


def test_an_attribute_of_a_module_is_named_with_a_colon_or_a_dot(module: Module) -> None:
    name = module(
        """
        class Config:
            default_queue = "from-class"
        """
    )
    assert values_from_object(f"{name}:Config") == {"default_queue": "from-class"}
    assert values_from_object(f"{name}.Config") == {"default_queue": "from-class"}


def test_what_a_settings_module_imports_and_defines_besides_settings_is_skipped(
    module: Module,
) -> None:
    name = module(
        """
        from __future__ import annotations

        import os
        from pathlib import Path
        from typing import Any

        def env(key: str) -> Any:
            return os.environ.get(key)

        default_queue = "q"
        _private = 1
        """
    )
    assert values_from_object(name) == {"default_queue": "q"}


def test_a_typo_is_an_error_naming_the_object_and_the_closest_setting(module: Module) -> None:
    name = module('brokr_url = "memory://x"\n')
    with pytest.raises(UnknownSettingError) as info:
        values_from_object(name)
    assert f"config_from_object({name})" in str(info.value)
    assert "did you mean 'broker_url'" in str(info.value)


def test_a_celery_name_petiole_spells_otherwise_is_an_error_naming_the_petiole_one(
    module: Module,
) -> None:
    name = module("worker_soft_shutdown_timeout = 10\n")
    with pytest.raises(CelerySpellingError, match=r"is spelled `shutdown_timeout_s` in Petiole"):
        values_from_object(name)


def test_a_wrong_type_is_an_error_naming_the_object() -> None:
    class Config:
        lease_s = "long"

    with pytest.raises(SettingTypeError, match=r"config_from_object\(.*Config\)"):
        values_from_object(Config)


def test_one_setting_given_twice_is_an_error_naming_both_attributes() -> None:
    class Config:
        broker_url = "memory://a"
        BROKER_URL = "memory://b"

    with pytest.raises(ConfigError, match=r"sets 'broker_url' twice, as '.*' and '.*'"):
        values_from_object(Config)


def test_a_module_that_cannot_be_imported_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"config_from_object\('petiole_no_such\.settings'\)"):
        values_from_object("petiole_no_such.settings")


def test_a_missing_attribute_is_an_error_naming_it(module: Module) -> None:
    name = module("lease_s = 1\n")
    with pytest.raises(ConfigError, match=f"{name} has no 'Missing'"):
        values_from_object(f"{name}:Missing")
