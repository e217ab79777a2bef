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

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from petiole.errors import ConfigError
from petiole.urls import mask_password

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
    shown = mask_password(url)
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
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise ConfigError(f"{COMPONENT} URL {shown!r} has a malformed query: {exc}") from exc
    merged: dict[str, Any] = dict(options)
    seen: set[str] = set()
    for key, value in pairs:
        if key in seen:
            raise ConfigError(f"{COMPONENT} URL {shown!r} sets the option {key!r} twice")
        seen.add(key)
        merged[key] = value
    return build_options(merged, source=f"the options of {COMPONENT} {shown!r}")


def build_options(raw: Mapping[str, Any], *, source: str) -> SqsOptions:
    """Validate ``raw`` (strings from a URL, or typed values from TOML)."""
    by_name = {f.name: f for f in fields(SqsOptions)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in by_name:
            close = difflib.get_close_matches(key, by_name, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            valid = ", ".join(sorted(by_name))
            raise ConfigError(f"unknown option {key!r} in {source}{hint} (valid: {valid})")
        changes[key] = _coerce(key, value, str(by_name[key].type), source)
    result = replace(SqsOptions(), **changes)
    _check_ranges(result, source)
    return result


def _coerce(key: str, value: Any, type_name: str, source: str) -> Any:
    optional = "None" in type_name
    if value is None or (optional and value == ""):
        if optional:
            return None
        raise ConfigError(f"option {key!r} in {source} cannot be empty")
    if type_name.startswith("bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"option {key!r} in {source} must be true or false, got {value!r}")
    if type_name.startswith("int"):
        if isinstance(value, bool):
            raise ConfigError(f"option {key!r} in {source} must be an integer, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"option {key!r} in {source} must be an integer, got {value!r}"
            ) from None
        if not math.isfinite(number) or number != int(number):
            raise ConfigError(f"option {key!r} in {source} must be an integer, got {value!r}")
        return int(number)
    if not isinstance(value, str):
        raise ConfigError(f"option {key!r} in {source} must be a string, got {value!r}")
    return value


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
