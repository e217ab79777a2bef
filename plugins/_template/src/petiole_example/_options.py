"""The ``example://`` URL and each component's options, validated once.

URL form::

    example://[name][/][?option=value&...]

``name`` picks the store (``default`` when empty); a real plugin puts the
server's ``host:port`` there, and a store kept in a local path follows
``sqlite://`` (``example:///relative/path``, ``example:////absolute/path``; see
docs/plugin-guide.md). The example store has no authentication, so a user name
or password is refused rather than silently ignored.

Options come from the ``broker_options`` / ``backend_options`` config tables;
query parameters of the URL override them. Errors show the URL masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from petiole.plugin_api import (
    SettingTypeError,
    build_options,
    mask_url,
    query_options,
    split_server_url,
)

SCHEME = "example"
DEFAULT_NAME = "default"


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """The transport's options (see the README)."""

    max_message_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """The result backend's options (see the README)."""

    max_result_bytes: int = 1024 * 1024


Options = TypeVar("Options", TransportOptions, BackendOptions)


@dataclass(frozen=True, slots=True)
class Target(Generic[Options]):
    """A parsed URL: the store's name, and the component's options."""

    name: str
    options: Options
    masked_url: str


def parse_url(
    url: str, options: Mapping[str, Any], kind: type[Options], *, component: str
) -> Target[Options]:
    """Split ``url`` into the store name and ``kind`` options (query parameters win).

    Raises :class:`~petiole.plugin_api.ConfigError` for another scheme, a user
    name or password, a path, an unknown option (naming the valid ones) or a bad
    value (naming what was expected).
    """
    shown = mask_url(url)
    parts = split_server_url(
        url,
        scheme=SCHEME,
        component=component,
        form=f"{SCHEME}://name?option=value",
        no_auth="the example store has no authentication",
    )
    source = f"the options of the {component} {shown}"
    raw = {**options, **query_options(url, component=component)}
    built = build_options(kind, raw, source=source)
    # build_options refuses negative numbers; tighter bounds are the component's to check.
    for option in fields(built):
        value = getattr(built, option.name)
        if option.name.endswith("_bytes") and value < 1:
            raise SettingTypeError(
                option.name, source=source, expected="a whole number >= 1", got=value
            )
    return Target(parts.netloc or DEFAULT_NAME, built, shown)
