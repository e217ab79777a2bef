"""The example:// URL and the components' options: checked once, errors that say why."""

from __future__ import annotations

import pytest
from petiole_example.results import create_backend
from petiole_example.testing import ExampleServer
from petiole_example.transport import create_transport

from petiole.plugin_api import (
    SUCCESS,
    ConfigError,
    MessageTooLarge,
    ResultRecord,
    ResultTooLarge,
    UnknownSettingError,
)


def test_an_unknown_option_is_refused_naming_the_valid_ones(example_server: ExampleServer) -> None:
    with pytest.raises(UnknownSettingError, match=r"valid: max_message_bytes.*did you mean"):
        create_transport(example_server.url, {"max_mesage_bytes": 10})


def test_url_query_options_override_the_config_table(example_server: ExampleServer) -> None:
    transport = create_transport(
        f"{example_server.url}?max_message_bytes=8", {"max_message_bytes": 99}
    )

    assert transport.capabilities.max_message_bytes == 8
    with pytest.raises(MessageTooLarge, match="9 bytes exceeds the example transport limit of 8"):
        transport.publish("q", b"123456789")
    transport.close()


def test_a_result_over_max_result_bytes_is_refused_for_good(example_server: ExampleServer) -> None:
    backend = create_backend(example_server.url, {"max_result_bytes": "4"})

    assert backend.capabilities.max_result_bytes == 4
    with pytest.raises(ResultTooLarge) as info:
        backend.store(ResultRecord("t", SUCCESS, payload=b"12345"), ttl_s=None)
    assert (info.value.size_bytes, info.value.limit_bytes) == (5, 4)
    assert backend.get("t") is None
    backend.close()


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_a_size_limit_must_be_a_positive_whole_number(value: str) -> None:
    with pytest.raises(ConfigError, match="max_result_bytes"):
        create_backend(f"example://x?max_result_bytes={value}", {})


def test_a_password_is_refused_and_never_shown() -> None:
    with pytest.raises(ConfigError) as info:
        create_transport("example://user:s3cret@store", {})
    assert "no authentication" in str(info.value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("url", ["redis://store", "example://store/path", "example:store"])
def test_a_url_of_another_form_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="example://"):
        create_transport(url, {})
