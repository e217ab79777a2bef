"""The ``sqs://`` URL and its options, validated once into an :class:`SqsOptions`.

URL forms::

    sqs://                                      region and credentials from the AWS chain
    sqs://?region=eu-west-1&queue_prefix=app-   query parameters set options
    sqs://?endpoint_url=http://127.0.0.1:9324   a local server (moto, ElasticMQ) or a VPC endpoint

Every option can also be set in the ``broker_options`` table of the configuration;
a URL query parameter overrides the table. Credentials never go in the URL: they
come from the standard AWS chain (environment, shared files, ``profile``, instance
or task role), so they never reach a log line or an error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from petiole import component_options
from petiole.component_options import query_options
from petiole.errors import ConfigError
from petiole.urls import mask_url

SCHEME = "sqs"
COMPONENT = "sqs transport"

#: SQS's own limits.
MAX_DELAY_S = 900  # DelaySeconds
MAX_VISIBILITY_S = 43_200  # VisibilityTimeout: 12 hours
MAX_WAIT_TIME_S = 20  # WaitTimeSeconds of one ReceiveMessage
MAX_MESSAGE_BYTES = 262_144  # body plus message attributes, unless the queue says less
MESSAGE_GROUPS = ("queue", "task")


@dataclass(frozen=True, slots=True)
class SqsOptions:
    """Every option of the SQS transport; see the plugin README for each one."""

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    queue_prefix: str = ""
    create_queues: bool = True
    wait_time_s: int = MAX_WAIT_TIME_S
    visibility_timeout_s: int = 30
    fifo: bool = False
    message_group: str = "queue"
    dead_letter_suffix: str = "-dlq"
    max_receive_count: int | None = None
    max_delay_s: int = MAX_DELAY_S
    message_size_limit_bytes: int = MAX_MESSAGE_BYTES
    max_pool_connections: int = 20


def parse_url(url: str, options: Mapping[str, Any]) -> SqsOptions:
    """Options from ``broker_options`` with the URL's query parameters over them.

    Raises :class:`~petiole.errors.ConfigError` for a malformed URL, credentials
    in the URL, an unknown option or a value out of range.
    """
    shown = mask_url(url)
    parts = urlsplit(url)
    if parts.scheme != SCHEME or not url.startswith(f"{SCHEME}://"):
        raise ConfigError(f"{COMPONENT} URL {shown!r} is not an {SCHEME}:// URL")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"{COMPONENT} URL {shown!r} carries credentials; SQS credentials come from the "
            "AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws, the 'profile' "
            "option, or an instance/task role), never from the URL"
        )
    if parts.netloc or parts.path not in ("", "/") or parts.fragment:
        raise ConfigError(
            f"{COMPONENT} URL {shown!r} has a host or path; SQS is addressed by region "
            "(sqs://?region=eu-west-1) or endpoint (sqs://?endpoint_url=http://host:port)"
        )
    merged: dict[str, Any] = {**options, **query_options(url, component=COMPONENT)}
    return build_options(merged, source=f"the options of {COMPONENT} {shown!r}")


def build_options(raw: Mapping[str, Any], *, source: str) -> SqsOptions:
    """Validate ``raw`` (strings from a URL, or typed values from TOML)."""
    result = component_options.build_options(SqsOptions, raw, source=source)
    _check_ranges(result, source)
    return result


def _check_ranges(options: SqsOptions, source: str) -> None:
    def bounded(name: str, value: int, low: int, high: int) -> None:
        if not low <= value <= high:
            raise ConfigError(f"option {name!r} in {source} must be {low}-{high}, got {value}")

    bounded("wait_time_s", options.wait_time_s, 0, MAX_WAIT_TIME_S)
    bounded("visibility_timeout_s", options.visibility_timeout_s, 0, MAX_VISIBILITY_S)
    bounded("max_delay_s", options.max_delay_s, 1, MAX_DELAY_S)
    bounded("message_size_limit_bytes", options.message_size_limit_bytes, 8_192, 1_048_576)
    bounded("max_pool_connections", options.max_pool_connections, 1, 1000)
    if options.max_receive_count is not None:
        bounded("max_receive_count", options.max_receive_count, 1, 1000)
    if options.message_group not in MESSAGE_GROUPS:
        raise ConfigError(
            f"option 'message_group' in {source} must be one of {', '.join(MESSAGE_GROUPS)}, "
            f"got {options.message_group!r}"
        )
    if not options.dead_letter_suffix:
        raise ConfigError(f"option 'dead_letter_suffix' in {source} cannot be empty")
