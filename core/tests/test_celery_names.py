"""The table of Celery names: checked against the live code, read by the settings,
and rendered into the migration guide."""

from __future__ import annotations

import datetime as dt
import inspect
import re
from pathlib import Path
from typing import get_origin, get_type_hints

import pytest

from petiole.app import Petiole
from petiole.celery_names import (
    KINDS,
    SAME,
    TABLE,
    CeleryName,
    CelerySpellingError,
    Kind,
    lookup,
    markdown_tables,
    old_setting_name,
    translate,
)
from petiole.cli import worker_cmd
from petiole.config import SETTING_NAMES, Settings, env_values, load_settings, validate
from petiole.errors import ConfigError, SettingTypeError, UnknownSettingError
from petiole.task import TASK_OPTIONS, Task

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "migrating-from-celery.md"
GENERATED = re.compile(r"<!-- generated: celery-names -->\n(.*?)<!-- end generated -->", re.S)


def petiole_names(kind: Kind) -> set[str]:
    """What Petiole itself accepts, read from the code."""
    if kind == "setting":
        return set(SETTING_NAMES)
    if kind == "task option":
        return set(TASK_OPTIONS) | {"base"}  # base= is taken by app.task itself
    if kind == "calling option":
        return set(inspect.signature(Task.apply_async).parameters) - {"self", "args", "kwargs"}
    if kind == "revoke option":
        return set(inspect.signature(Petiole.revoke).parameters) - {"self", "task_ids"}
    # A flag kept only to refuse it with what to do meanwhile (-E, -B) is not Petiole's.
    refused = getattr(worker_cmd, "NOT_YET", {})
    return {
        opt
        for param in worker_cmd.worker.params
        if param.name not in refused
        for opt in (*param.opts, *param.secondary_opts)
    }


ALL = [entry for kind in KINDS for entry in TABLE[kind]]


def _id(entry: CeleryName) -> str:
    return f"{entry.kind}:{entry.celery}"


@pytest.mark.parametrize("entry", [e for e in ALL if e.how in ("alias", "renamed")], ids=_id)
def test_an_alias_or_rename_names_what_petiole_accepts(entry: CeleryName) -> None:
    assert entry.petiole is not None
    name, _, option = entry.petiole.partition(".")
    assert name in petiole_names(entry.kind), (
        f"{entry.kind} {entry.celery!r} points at {entry.petiole!r}, which Petiole does not have"
    )
    if option:  # "broker_options.queue_type": the setting is a table of a plugin's options
        assert get_origin(get_type_hints(Settings)[name]) is dict


@pytest.mark.parametrize("kind", KINDS)
def test_no_entry_claims_a_name_petiole_now_spells_the_same(kind: Kind) -> None:
    adopted = sorted(
        spelling
        for entry in TABLE[kind]
        for spelling in (entry.celery, *entry.also)
        if spelling in petiole_names(kind)
    )
    assert not adopted, f"Petiole now has these {kind}s: move them to SAME: {adopted}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_name_spelled_the_same_is_petiole_s(kind: Kind) -> None:
    missing = sorted(set(SAME[kind]) - petiole_names(kind))
    assert not missing, f"SAME lists {kind}s Petiole does not have: {missing}"


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_is_either_in_the_table_or_spelled_the_same(kind: Kind) -> None:
    in_table = {entry.celery for entry in TABLE[kind]}
    assert not in_table & set(SAME[kind])


def test_every_alias_of_a_setting_with_other_units_converts_its_value() -> None:
    converted = {e.celery for e in TABLE["setting"] if e.convert is not None}
    assert {"result_expires", "worker_max_memory_per_child", "task_time_limit"} <= converted


# -- lookup -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "celery"),
    [
        ("result_backend", "result_backend"),
        ("CELERY_RESULT_BACKEND", "result_backend"),  # the old uppercase name
        ("CELERY_TASK_RESULT_EXPIRES", "result_expires"),  # an irregular old name
        ("CELERYD_MAX_TASKS_PER_CHILD", "worker_max_tasks_per_child"),
        ("CELERY_TASK_ALWAYS_EAGER", "task_always_eager"),  # Django's namespaced form
        ("TASK_ALWAYS_EAGER", "task_always_eager"),  # that form, its namespace removed
        ("CASSANDRA_COLUMN_FAMILY", "cassandra_table"),
    ],
)
def test_lookup_finds_a_setting_by_any_of_celery_s_spellings(name: str, celery: str) -> None:
    found = lookup("setting", name)
    assert found is not None
    assert found.celery == celery


@pytest.mark.parametrize("name", ["BROKER_URL", "CELERY_BROKER_URL", "CELERYD_CONCURRENCY"])
def test_an_uppercase_spelling_of_a_name_petiole_shares_is_an_alias_of_it(name: str) -> None:
    found = lookup("setting", name)
    assert found is not None
    assert found.how == "alias"
    assert found.petiole == found.celery


@pytest.mark.parametrize("name", ["broker_url", "lease_s", "no_such_thing", "NO_SUCH_THING"])
def test_lookup_knows_nothing_of_names_spelled_the_same_or_not_celery_s(name: str) -> None:
    assert lookup("setting", name) is None


def test_an_alias_says_what_it_is_read_as() -> None:
    found = lookup("setting", "CELERY_RESULT_BACKEND")
    assert found is not None
    assert found.message("CELERY_RESULT_BACKEND").startswith(
        "`CELERY_RESULT_BACKEND` (Celery's `result_backend`) is read as `backend_url`: "
    )


def test_lookup_finds_a_worker_flag_by_its_short_spelling() -> None:
    found = lookup("worker flag", "-E")
    assert found is not None
    assert found.celery == "--task-events"
    assert found.how == "absent"


def test_the_old_name_of_a_new_setting_follows_celery_s_prefixes() -> None:
    assert old_setting_name("task_acks_late") == "CELERY_ACKS_LATE"
    assert old_setting_name("worker_concurrency") == "CELERYD_CONCURRENCY"
    assert old_setting_name("beat_schedule") == "CELERYBEAT_SCHEDULE"
    assert old_setting_name("result_serializer") == "CELERY_RESULT_SERIALIZER"
    assert old_setting_name("broker_url") == "BROKER_URL"


# -- translate ------------------------------------------------------------------


def test_translate_renames_aliases_and_passes_the_rest_through() -> None:
    out = translate("task option", {"time_limit": 5, "queue": "q", "mystery": 1})
    assert out.values == {"time_limit_s": 5, "queue": "q", "mystery": 1}
    assert out.messages == {}
    assert out.origins == {"time_limit_s": "time_limit"}


def test_translate_answers_a_renamed_name_with_the_petiole_spelling() -> None:
    out = translate("task option", {"acks_on_failure_or_timeout": False})
    assert out.values == {}
    assert out.messages["acks_on_failure_or_timeout"].startswith(
        "`acks_on_failure_or_timeout` is spelled `dead_letter_on_failure` in Petiole"
    )


def test_translate_answers_an_absent_name_with_what_to_do() -> None:
    message = translate("calling option", {"routing_key": "x"}).messages["routing_key"]
    assert message.startswith("`routing_key` has no Petiole equivalent: ")
    assert "queue=" in message


def test_translate_refuses_an_alias_given_beside_its_petiole_spelling() -> None:
    out = translate("calling option", {"time_limit": 5, "time_limit_s": 6})
    assert "both given" in out.messages["time_limit"]


def test_a_name_petiole_accepts_is_passed_through_even_while_the_table_lists_it() -> None:
    out = translate("setting", {"beat_schedule": {}}, petiole_names={"beat_schedule"})
    assert out.values == {"beat_schedule": {}}
    assert out.messages == {}


def test_a_message_about_an_old_spelling_names_the_new_one_too() -> None:
    message = translate("setting", {"CELERY_ACKS_ON_FAILURE_OR_TIMEOUT": True}).messages
    assert "(Celery's `task_acks_on_failure_or_timeout`)" in next(iter(message.values()))


# -- the settings read Celery's names -----------------------------------------------


def test_celery_setting_aliases_are_read_as_petiole_s() -> None:
    settings = load_settings(
        {
            "result_backend": "memory://r",
            "CELERY_BROKER_URL": "memory://b",
            "task_time_limit": 10,
            "result_expires": dt.timedelta(hours=1),
            "worker_max_memory_per_child": 204800,  # KiB
            "worker_prefetch_multiplier": 1,
        },
        environ={},
        config_file="/dev/null",
    )
    assert settings.backend_url == "memory://r"
    assert settings.broker_url == "memory://b"
    assert settings.time_limit_s == 10.0
    assert settings.result_ttl_s == 3600.0
    assert settings.max_memory_per_child_mb == 200.0
    assert settings.prefetch_multiplier == 1


def test_celery_s_none_for_no_limit_is_petiole_s_zero() -> None:
    values = validate({"worker_max_tasks_per_child": None, "result_expires": None}, source="test")
    assert values == {"max_tasks_per_child": 0, "result_ttl_s": 0.0}


def test_a_renamed_setting_is_an_error_naming_the_petiole_spelling() -> None:
    with pytest.raises(CelerySpellingError) as info:
        validate({"worker_soft_shutdown_timeout": 10}, source="keyword arguments")
    message = str(info.value)
    assert "`worker_soft_shutdown_timeout` is spelled `shutdown_timeout_s` in Petiole" in message
    assert "keyword arguments" in message
    assert isinstance(info.value, UnknownSettingError)  # caught where unknown keys are


def test_an_absent_setting_is_an_error_saying_what_to_do_instead() -> None:
    with pytest.raises(CelerySpellingError, match=r"`beat_schedule` has no Petiole equivalent: "):
        validate({"beat_schedule": {}}, source="s")


def test_a_value_with_no_petiole_meaning_is_refused_with_why() -> None:
    with pytest.raises(CelerySpellingError, match="Celery's 0 \\(no limit\\)"):
        validate({"worker_prefetch_multiplier": 0}, source="s")


def test_a_celery_transport_option_that_is_a_petiole_setting_is_pointed_at_it() -> None:
    with pytest.raises(CelerySpellingError, match="`lease_s` setting"):
        validate({"broker_transport_options": {"visibility_timeout": 60}}, source="s")


def test_a_refused_value_is_shown_masked() -> None:
    options = {"visibility_timeout": 60, "password": "hunter2-secret"}
    with pytest.raises(CelerySpellingError) as info:
        validate({"broker_transport_options": options}, source="s")
    assert "hunter2-secret" not in str(info.value)


def test_a_wrong_type_under_a_celery_name_is_reported_under_that_name() -> None:
    with pytest.raises(SettingTypeError, match=r"'result_backend \(read as backend_url\)'"):
        validate({"result_backend": 5}, source="s")


def test_an_unknown_name_in_capitals_suggests_petiole_s_lowercase_one() -> None:
    with pytest.raises(UnknownSettingError, match="did you mean 'lease_s'"):
        validate({"LEASE_S": 3}, source="s")


def test_celery_names_after_the_environment_prefix_are_read_or_refused() -> None:
    assert env_values({"PETIOLE_TASK_TIME_LIMIT": "30"}) == {"time_limit_s": 30.0}
    with pytest.raises(CelerySpellingError, match="PETIOLE_WORKER_STATE_DB"):
        env_values({"PETIOLE_WORKER_STATE_DB": "/tmp/x"})


# -- the migration guide ----------------------------------------------------------


def test_the_migration_guide_shows_the_table_as_the_code_defines_it() -> None:
    match = GENERATED.search(GUIDE.read_text())
    assert match is not None, "docs/migrating-from-celery.md lost its generated-part markers"
    assert match.group(1) == markdown_tables(), "stale Celery names: run `nox -s docs`"


def test_the_rendered_table_has_a_row_per_entry() -> None:
    rendered = markdown_tables()
    for kind in KINDS:
        for entry in TABLE[kind]:
            assert f"| `{entry.celery}`" in rendered


def test_a_setting_that_asks_for_what_petiole_does_is_accepted_with_no_effect() -> None:
    settings = load_settings({"timezone": "UTC", "enable_utc": True})
    assert isinstance(settings, Settings)
    with pytest.raises(CelerySpellingError, match=r"`timezone` = 'Europe/Paris': Petiole keeps"):
        load_settings({"timezone": "Europe/Paris"})
    with pytest.raises(CelerySpellingError, match=r"`enable_utc` = False: Petiole's times"):
        load_settings({"enable_utc": False})


@pytest.mark.parametrize("option", ["signal", "wait", "timeout"])
def test_celery_s_revoke_options_are_refused_saying_what_petiole_does(option: str) -> None:
    app = Petiole("revoking", broker="memory://", backend="memory://", config_file=None)
    with pytest.raises(
        UnknownSettingError, match=rf"in revoke\(\.\.\.\): `{option}` has no Petiole"
    ):
        app.revoke("some-id", terminate=True, **{option: "SIGKILL"})
    with pytest.raises(UnknownSettingError, match="ends the task's process itself"):
        app.AsyncResult("some-id").revoke(terminate=True, signal="SIGKILL")
    with pytest.raises(ConfigError, match=r"unknown option\(s\): 'terminat'"):
        app.revoke("some-id", terminat=True)
