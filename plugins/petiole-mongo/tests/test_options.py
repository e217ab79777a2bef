"""The mongodb:// URL and its options."""

from __future__ import annotations

import pytest
from petiole_mongo._options import MongoOptions, masked, parse_url
from petiole_mongo.transport import MongoTransport

from petiole.errors import ConfigError, SettingTypeError, UnknownSettingError


def test_bare_url_gives_defaults_and_the_petiole_database() -> None:
    target = parse_url("mongodb://localhost", {}, component="test")

    assert target.options == MongoOptions()
    assert target.database == "petiole"
    assert target.client_url == "mongodb://localhost"


def test_our_query_options_are_taken_out_and_the_client_options_kept() -> None:
    target = parse_url(
        "mongodb://u:p@h1:27017,h2:27018/app?replicaSet=rs0&poll_interval_ms=50"
        "&collection_prefix=billing&change_streams=false&w=majority",
        {},
        component="test",
    )

    assert target.options == MongoOptions(
        collection_prefix="billing", poll_interval_ms=50, change_streams=False
    )
    assert target.database == "app"
    assert target.client_url == "mongodb://u:p@h1:27017,h2:27018/app?replicaSet=rs0&w=majority"


def test_url_query_overrides_the_options_table() -> None:
    target = parse_url(
        "mongodb://h/?poll_interval_ms=50&serverSelectionTimeoutMS=100",
        {"poll_interval_ms": 500, "serverselectiontimeoutms": 9000, "tls": False},
        component="test",
    )

    assert target.options.poll_interval_ms == 50
    assert target.client_options == {"tls": False}


def test_unknown_option_suggests_the_right_name() -> None:
    with pytest.raises(UnknownSettingError, match="did you mean 'poll_interval_ms'"):
        parse_url("mongodb://h/?poll_interval=5", {}, component="test")
    with pytest.raises(UnknownSettingError, match="collection_prefix"):
        parse_url("mongodb://h/", {"collection_prefx": "x"}, component="test")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("poll_interval_ms=0", "whole number >= 1"),
        ("change_streams=maybe", "true or false"),
        ("collection_prefix=a$b", "collection name prefix"),
        ("w=1&W=2", "twice"),
    ],
)
def test_bad_option_values_are_config_errors(query: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_url(f"mongodb://h/?{query}", {}, component="test")


def test_bad_values_say_where_they_came_from() -> None:
    with pytest.raises(SettingTypeError, match="mongodb://u:\\*\\*\\*@h/"):
        parse_url("mongodb://u:hunter2@h/?poll_interval_ms=soon", {}, component="test")


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ConfigError, match="not a mongodb:// or mongodb\\+srv:// URL"):
        parse_url("redis://h/0", {}, component="test")


def test_password_is_masked_even_with_several_hosts() -> None:
    assert masked("mongodb://app:s3cret@h1:1,h2:2/db") == "mongodb://app:***@h1:1,h2:2/db"
    assert masked("mongodb://app:s3cret@h1:1/db") == "mongodb://app:***@h1:1/db"


def test_a_url_pymongo_refuses_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        MongoTransport("mongodb://app:s3cret@h1/?tls=yes-please", {})

    assert "s3cret" not in str(info.value)
