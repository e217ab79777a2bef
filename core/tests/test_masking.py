"""What Petiole shows of a URL or a setting in errors and logs: no credential, in any form."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from petiole.component_options import build_options, query_options
from petiole.config import load_settings
from petiole.errors import ConfigError, SettingTypeError, UnknownSettingError
from petiole.urls import is_secret_name, mask_password, mask_text, mask_url, mask_value, quote_part

SECRET = "S3cr3tValue"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:secret@host/0?x=1", "redis://user:***@host/0?x=1"),
        ("redis://:ss/w#rd@host/0", "redis://:***@host/0"),
        ("redis://:p@ss/w#rd@host/0", "redis://:***@host/0"),
        ("redis://u:a?b@host:1/0", "redis://u:***@host:1/0"),
        ("redis://u:12/34@host/0", "redis://u:***@host/0"),
        ("redis://u:p@ss@[::1]:6379/2", "redis://u:***@[::1]:6379/2"),
        ("unix://:pw@/run/redis.sock?db=2", "unix://:***@/run/redis.sock?db=2"),
        ("mongodb://u:p@h1:1,h2:2/db", "mongodb://u:***@h1:1,h2:2/db"),
        ("cassandra://u:p%40ss@10.0.0.1,10.0.0.2/ks", "cassandra://u:***@10.0.0.1,10.0.0.2/ks"),
        ("redis://[::1:6379/0", "redis://[::1:6379/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("sqlite:////tmp/a@b.db", "sqlite:////tmp/a@b.db"),
        ("sqlite:////tmp/u:p@b.db", "sqlite:////tmp/u:p@b.db"),
        ("//u:pw@h/0", "//u:***@h/0"),
        (":pw@h:6379", ":***@h:6379"),
        ("h:6379/0?token=t", "h:6379/0?token=***"),
        ("/var/lib/petiole.db", "/var/lib/petiole.db"),
    ],
)
def test_url_passwords_are_masked_whole_and_nothing_else_changes(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://host/0?password=S3", "redis://host/0?password=***"),
        ("redis://h/0?Password=S3&key_prefix=app", "redis://h/0?Password=***&key_prefix=app"),
        (
            "sqs://?aws_access_key_id=AKIA1&aws_secret_access_key=SK&aws_session_token=T",
            "sqs://?aws_access_key_id=***&aws_secret_access_key=***&aws_session_token=***",
        ),
        (
            "mongodb://h/db?authSource=admin&authMechanismProperties=AWS_SESSION_TOKEN:T",
            "mongodb://h/db?authSource=admin&authMechanismProperties=***",
        ),
        (
            "mongodb://h/?tlsCertificateKeyFile=/k.pem&tlsCertificateKeyFilePassword=P",
            "mongodb://h/?tlsCertificateKeyFile=/k.pem&tlsCertificateKeyFilePassword=***",
        ),
        ("rediss://h/0?ssl_keyfile=/etc/k.pem", "rediss://h/0?ssl_keyfile=/etc/k.pem"),
        ("kafka://h/?sasl_password=P&token=T", "kafka://h/?sasl_password=***&token=***"),
        ("sqs://?endpoint_url=http://u:pw@h:1", "sqs://?endpoint_url=http://u:***@h:1"),
        ("sqs://?endpoint_url=http%3A%2F%2Fu%3Apw%40h", "sqs://?endpoint_url=http://u:***@h"),
        ("redis://h/0?password=S3#frag", "redis://h/0?password=***#frag"),
    ],
)
def test_secret_named_query_values_are_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_password_is_mask_url_for_existing_callers() -> None:
    assert mask_password("redis://:pw@h/0?token=t") == "redis://:***@h/0?token=***"


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "passwd",
        "pwd",
        "sasl_password",
        "aws_secret_access_key",
        "aws_access_key_id",
        "aws_session_token",
        "api-key",
        "apiKey",
        "client_secret",
        "credentials",
        "auth",
        "authMechanismProperties",
        "tlsCertificateKeyFilePassword",
        "tlscertificatekeyfilepassword",
    ],
)
def test_names_that_hold_secrets_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "ssl_keyfile",
        "tls_keyfile",
        "ssl_certfile",
        "tlsCertificateKeyFile",
        "password_file",
        "key_prefix",
        "authSource",
        "authMechanism",
        "secure_connect_bundle",
        "queue_prefix",
        "endpoint_url",
        "region",
        "username",
    ],
)
def test_names_that_hold_paths_or_names_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_free_text_has_its_urls_and_secret_pairs_masked() -> None:
    text = '{"password": "A1", "url": "redis://:B2@h/0", token=C3, \'secret\': \'D4\', x=1}'
    masked = mask_text(text)
    for secret in ("A1", "B2", "C3", "D4"):
        assert secret not in masked
    assert '"password": "***"' in masked
    assert "redis://:***@h/0" in masked
    assert "x=1" in masked


def test_values_are_masked_by_their_name_and_inside_tables_and_lists() -> None:
    assert mask_value("sasl_password", 5) == "***"
    assert mask_value("broker_options", {"password": "A1", "db": 2}) == {
        "password": "***",
        "db": 2,
    }
    assert mask_value("worker_queues", ["redis://:B2@h"]) == ["redis://:***@h"]


def test_a_url_part_is_quoted_only_if_the_masked_url_shows_it() -> None:
    url = "memcached://u:Zq9?ss@h"
    assert quote_part("h:99999", "memcached://h:99999") == "'h:99999'"
    quoted = quote_part("u:Zq9", mask_url(url))
    assert "Zq9" not in quoted
    assert "percent-encoded" in quoted


# -- option parsers -------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    key_prefix: str = "p"
    timeout_s: float = 1.0
    sasl_password: str = ""
    signing: str = field(default="", metadata={"secret": True})
    retries: int = 0


def test_unknown_option_error_masks_the_secret_in_the_url() -> None:
    url = f"redis://:{SECRET}@h/0?password={SECRET}"
    with pytest.raises(UnknownSettingError) as info:
        build_options(
            _Options,
            query_options(url, component="x"),
            source=f"the options of x {mask_url(url)}",
        )
    assert SECRET not in str(info.value)
    assert "'password'" in str(info.value)


def test_bad_value_of_a_secret_named_option_is_shown_as_stars() -> None:
    with pytest.raises(SettingTypeError) as info:
        build_options(_Options, {"sasl_password": 12345678}, source="s")
    assert "12345678" not in str(info.value)
    assert "***" in str(info.value)


def test_bad_value_of_a_field_declared_secret_is_shown_as_stars() -> None:
    with pytest.raises(SettingTypeError) as info:
        build_options(_Options, {"signing": 12345678}, source="s")
    assert "12345678" not in str(info.value)


def test_bad_value_holding_a_url_with_a_password_is_masked() -> None:
    with pytest.raises(SettingTypeError) as info:
        build_options(_Options, {"timeout_s": f"redis://:{SECRET}@h"}, source="s")
    assert SECRET not in str(info.value)


def test_bad_value_of_an_ordinary_option_is_still_shown() -> None:
    with pytest.raises(SettingTypeError, match="'soon'"):
        build_options(_Options, {"timeout_s": "soon"}, source="s")


def test_malformed_query_error_masks_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        query_options(f"redis://:{SECRET}@h/0?a=1&a=2", component="x")
    assert SECRET not in str(info.value)


# -- settings ---------------------------------------------------------------------------


def test_settings_table_from_the_environment_that_is_not_json_is_masked(tmp_path: Path) -> None:
    environ = {"PETIOLE_BROKER_OPTIONS": f'{{"password": "{SECRET}", url: "redis://:{SECRET}@h"'}
    with pytest.raises(SettingTypeError) as info:
        load_settings(config_file="/dev/null", environ=environ, cwd=tmp_path)
    assert SECRET not in str(info.value)
    assert "PETIOLE_BROKER_OPTIONS" in str(info.value)


def test_settings_of_the_wrong_type_in_a_config_file_are_masked(tmp_path: Path) -> None:
    config = tmp_path / "petiole.toml"
    config.write_text(
        f'broker_url = ["redis://:{SECRET}@h/0"]\nbroker_options = "token={SECRET}"\n'
    )
    with pytest.raises(SettingTypeError) as info:
        load_settings(config_file=config, environ={}, cwd=tmp_path)
    assert SECRET not in str(info.value)
    assert "redis://:***@h/0" in str(info.value)
