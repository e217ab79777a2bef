from __future__ import annotations

from dataclasses import dataclass

import pytest

from petiole.component_options import build_options, query_options
from petiole.errors import ConfigError, SettingTypeError, UnknownSettingError


@dataclass(frozen=True)
class Options:
    key_prefix: str = "petiole"
    timeout_s: float = 5.0
    max_connections: int = 0
    tls: bool = False


def test_url_strings_are_converted_by_the_fields_types() -> None:
    raw = query_options("x://h/?timeout_s=2.5&max_connections=8&tls=yes", component="x")
    assert build_options(Options, raw, source="s") == Options("petiole", 2.5, 8, True)


def test_defaults_stand_for_what_is_not_given() -> None:
    assert build_options(Options, {}, source="s") == Options()


def test_unknown_option_names_the_valid_ones_and_the_closest() -> None:
    with pytest.raises(UnknownSettingError) as info:
        build_options(Options, {"timeout": 3}, source="the options of x")
    message = str(info.value)
    assert "'timeout'" in message
    assert "valid: key_prefix, timeout_s, max_connections, tls" in message
    assert "did you mean 'timeout_s'" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("timeout_s", "soon", "a number >= 0"),
        ("timeout_s", -1, "a number >= 0"),
        ("max_connections", 2.5, "a whole number >= 0"),
        ("max_connections", True, "a whole number >= 0"),
        ("tls", "maybe", "true or false"),
        ("key_prefix", 3, "a string"),
    ],
)
def test_bad_values_name_what_was_expected(key: str, value: object, expected: str) -> None:
    with pytest.raises(SettingTypeError, match=expected):
        build_options(Options, {key: value}, source="s")


def test_a_query_setting_a_key_twice_is_refused_with_the_password_masked() -> None:
    with pytest.raises(ConfigError, match=r"redis://:\*\*\*@h/\?a=1&a=2' sets 'a' twice"):
        query_options("redis://:secret@h/?a=1&a=2", component="redis transport")


def test_a_url_without_a_query_has_no_options() -> None:
    assert query_options("redis://h:6379/0", component="x") == {}


@dataclass(frozen=True)
class Optionals:
    region: str | None = None
    max_receive_count: int | None = None


def test_optional_fields_take_none_or_an_empty_string_as_unset() -> None:
    assert build_options(Optionals, {"region": "", "max_receive_count": None}, source="s") == (
        Optionals()
    )
    assert build_options(Optionals, {"max_receive_count": "5"}, source="s").max_receive_count == 5
