"""``app.conf`` for code that comes from Celery (celery_conf.py): updates and
assignments configure the app under Celery's names, reads return the settings,
and what Petiole lacks is refused saying what to write."""

from __future__ import annotations

import pytest

from petiole import Petiole
from petiole.celery_names import CelerySpellingError
from petiole.errors import ConfigError


@pytest.fixture
def app() -> Petiole:
    return Petiole("conf", broker="memory://conf", backend="memory://conf", config_file="/dev/null")


def test_update_and_assignment_configure_the_app_under_celery_s_names(app: Petiole) -> None:
    app.conf.update(task_serializer="json", result_expires=3600, task_acks_late=True)
    app.conf.update({"worker_prefetch_multiplier": 4})
    app.conf.task_default_queue = "first"
    app.conf["task_time_limit"] = 30

    settings = app.settings
    assert settings.result_ttl_s == 3600
    assert settings.acks_late is True
    assert settings.prefetch_multiplier == 4
    assert settings.default_queue == "first"
    assert settings.time_limit_s == 30


def test_reads_return_the_setting_by_either_name(app: Petiole) -> None:
    app.conf.update(result_expires=60, task_default_queue="mail")
    assert app.conf.task_default_queue == app.conf.default_queue == "mail"
    assert app.conf.result_ttl_s == 60
    # Held in Petiole's units (a timedelta or seconds in Celery): read by its name.
    with pytest.raises(AttributeError, match=r"read app\.conf\.result_ttl_s"):
        _ = app.conf.result_expires
    assert app.conf["broker_url"] == "memory://conf"
    assert app.conf.get("nothing_like_this", "fallback") == "fallback"
    assert app.conf.get("task_default_queue") == "mail"
    with pytest.raises(KeyError, match=r"read app\.conf\.result_ttl_s"):
        app.conf.get("result_expires")  # not None: it was set
    with pytest.raises(AttributeError, match="no setting named 'nothing_like_this'"):
        _ = app.conf.nothing_like_this


def test_a_celery_setting_asking_for_what_petiole_does_is_accepted(app: Petiole) -> None:
    app.conf.update(task_create_missing_queues=True, enable_utc=True)
    with pytest.raises(CelerySpellingError, match="every queue is created when first used"):
        app.conf.task_create_missing_queues = False


def test_what_petiole_lacks_is_refused_naming_what_to_write(app: Petiole) -> None:
    with pytest.raises(CelerySpellingError, match=r"in app\.conf: `beat_schedule` has no"):
        app.conf.beat_schedule = {}
    with pytest.raises(AttributeError, match="`beat_schedule` has no Petiole equivalent"):
        _ = app.conf.beat_schedule


def test_a_write_after_the_app_connected_is_refused(app: Petiole) -> None:
    _ = app.transport
    with pytest.raises(ConfigError, match=r"app\.conf\.update\(\) must be called before"):
        app.conf.update(task_serializer="json")


def test_app_control_names_what_to_use_instead(app: Petiole) -> None:
    with pytest.raises(AttributeError, match=r"no control queues; revoke with `app\.revoke"):
        app.control.revoke("some-id")
