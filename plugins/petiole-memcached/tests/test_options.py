"""The memcached:// URL, its options, and memcached's expiry arithmetic."""

from __future__ import annotations

import pytest
from petiole_memcached._keys import MAX_KEY_BYTES, Keys
from petiole_memcached._options import MemcachedOptions, parse_url
from petiole_memcached._servers import MAX_RELATIVE_EXPIRY_S, expiry

from petiole.errors import ConfigError, SettingTypeError, UnknownSettingError


def test_one_server_with_defaults() -> None:
    target = parse_url("memcached://cache.internal:11311", {})

    assert target.servers == (("cache.internal", 11311),)
    assert target.options == MemcachedOptions()


def test_several_servers_keep_their_order_and_default_port() -> None:
    target = parse_url("memcached://10.0.0.1,10.0.0.2:11212,[::1]:11213,[fe80::1]/", {})

    assert target.servers == (
        ("10.0.0.1", 11211),
        ("10.0.0.2", 11212),
        ("::1", 11213),
        ("fe80::1", 11211),
    )
    assert target.server_names[2] == "[::1]:11213"


def test_query_parameters_override_backend_options() -> None:
    target = parse_url(
        "memcached://h:1?key_prefix=billing&max_item_bytes=2097152&wait_poll_max_s=0.2",
        {"key_prefix": "other", "socket_timeout_s": 3},
    )

    assert target.options == MemcachedOptions(
        key_prefix="billing",
        max_item_bytes=2 * 1024 * 1024,
        socket_timeout_s=3.0,
        wait_poll_max_s=0.2,
    )


def test_unknown_option_suggests_the_right_name() -> None:
    with pytest.raises(UnknownSettingError, match="did you mean 'max_item_bytes'"):
        parse_url("memcached://h?max_item_size=5", {})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h:6379", "does not start with memcached://"),
        ("memcached://", "names no server"),
        ("memcached://h:1/0", "has a path"),
        ("memcached://h:99999", "bad port"),
        ("memcached://h:", "empty port"),
        ("memcached://h:1,h:1", "twice"),
        ("memcached://[::1", "is malformed"),
        ("memcached://h:1,,h:2", "malformed server"),
        ("memcached://h?key_prefix=a&key_prefix=b", "twice"),
        ("memcached://h?oops", "malformed query"),
    ],
)
def test_malformed_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_url(url, {})


def test_credentials_are_refused_and_masked() -> None:
    with pytest.raises(ConfigError, match="no authentication") as info:
        parse_url("memcached://user:hunter2@h:11211", {})

    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("key_prefix", "has space", "letters, digits"),
        ("key_prefix", "a:b", "letters, digits"),
        ("key_prefix", "", "letters, digits"),
        ("max_item_bytes", "1000", "between 4096"),
        ("max_item_bytes", "lots", "whole number"),
        ("socket_timeout_s", "0", "> 0"),
        ("wait_poll_max_s", "nan", "a number"),
        ("startup_timeout_s", "-1", ">= 0"),
    ],
)
def test_bad_option_values_are_setting_type_errors(option: str, value: str, message: str) -> None:
    with pytest.raises(SettingTypeError, match=message):
        parse_url(f"memcached://h?{option}={value}", {})


@pytest.mark.parametrize(
    ("ttl_s", "exptime"),
    [(None, 0), (0, 1), (0.001, 2), (0.5, 2), (1, 2), (1.5, 3), (86_400, 86_401)],
)
def test_expiry_rounds_up_and_adds_a_second(ttl_s: float | None, exptime: int) -> None:
    assert expiry(ttl_s) == exptime


def test_expiry_beyond_thirty_days_is_an_absolute_time() -> None:
    now = 1_700_000_000.7
    assert expiry(MAX_RELATIVE_EXPIRY_S - 1, now=now) == MAX_RELATIVE_EXPIRY_S
    assert expiry(MAX_RELATIVE_EXPIRY_S, now=now) == 1_700_000_000 + MAX_RELATIVE_EXPIRY_S + 1


@pytest.mark.parametrize(
    "name",
    ["x" * 300, "with space", "tab\there", "naïve", "new\nline", "\x7f"],
)
def test_long_or_unsafe_names_are_hashed_into_valid_keys(name: str) -> None:
    key = Keys("petiole").result(name)

    assert key.startswith("petiole:r#")
    assert len(key) <= MAX_KEY_BYTES
    assert key.isascii()
    assert key.isprintable()
    assert " " not in key


def test_plain_and_hashed_keys_never_collide() -> None:
    keys = Keys("p")
    hashed = keys.result("a b")
    # A plain name that spells the hashed key's tail still gets its own key.
    assert keys.result(hashed.split("#", 1)[1]) != hashed
    assert keys.result("ok-name") == "p:r:ok-name"
