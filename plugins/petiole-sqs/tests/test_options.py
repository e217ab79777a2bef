"""The sqs:// URL and its options."""

from __future__ import annotations

import pytest
from petiole_sqs.options import SqsOptions, parse_url

from petiole.errors import ConfigError


def test_bare_url_gives_defaults() -> None:
    assert parse_url("sqs://", {}) == SqsOptions()


def test_query_parameters_set_typed_options() -> None:
    options = parse_url(
        "sqs://?region=eu-west-1&endpoint_url=http://127.0.0.1:9324&queue_prefix=app-"
        "&create_queues=false&wait_time_s=5&fifo=true&max_receive_count=20",
        {},
    )

    assert options == SqsOptions(
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:9324",
        queue_prefix="app-",
        create_queues=False,
        wait_time_s=5,
        fifo=True,
        max_receive_count=20,
    )


def test_url_query_overrides_broker_options() -> None:
    options = parse_url("sqs://?region=eu-west-1", {"region": "us-east-1", "wait_time_s": 3})

    assert (options.region, options.wait_time_s) == ("eu-west-1", 3)


def test_unknown_option_suggests_the_right_name() -> None:
    with pytest.raises(ConfigError, match="'wait_time_s'"):
        parse_url("sqs://?wait_time=5", {})


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("wait_time_s=21", "0-20"),
        ("max_delay_s=901", "1-900"),
        ("create_queues=maybe", "true or false"),
        ("visibility_timeout_s=1.5", "whole number"),
        ("message_group=user", "queue, task"),
        ("region=a&region=b", "twice"),
    ],
)
def test_bad_option_values_are_config_errors(query: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_url(f"sqs://?{query}", {})


def test_credentials_in_the_url_are_refused_and_masked() -> None:
    with pytest.raises(ConfigError, match="AWS chain") as info:
        parse_url("sqs://AKIAEXAMPLE:wJalrXUtnFEMI@/", {})

    assert "wJalrXUtnFEMI" not in str(info.value)


def test_a_host_in_the_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="endpoint_url"):
        parse_url("sqs://localhost:9324/", {})
