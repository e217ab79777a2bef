"""Options of a transport or result backend: from the config table and the URL's query.

Every component takes options two ways — the ``broker_options`` /
``backend_options`` config tables, and query parameters of its URL, which win
— and every one must refuse an unknown option naming the valid ones, and a bad
value naming what was expected. A component declares its options as a frozen
dataclass with plain defaults (``str``, ``int``, ``float``, ``bool``) and lets
:func:`build_options` do the rest::

    @dataclass(frozen=True)
    class RedisOptions:
        key_prefix: str = "petiole"
        connect_timeout_s: float = 5.0

    raw = {**options, **query_options(url, component="redis transport")}
    opts = build_options(RedisOptions, raw, source="the options of the redis transport")

Values from URLs are strings and are converted by the field's type. Numbers
must be non-negative (options are durations, sizes and counts); a component
checks tighter bounds itself, after building.

Errors never show a secret: the URL is masked by :func:`petiole.urls.mask_url`,
and a bad value of an option whose name holds a secret
(:func:`petiole.urls.is_secret_name`), or of a field declared with
``field(default="", metadata={"secret": True})``, is shown as ``***``.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints
from urllib.parse import SplitResult, parse_qsl, urlsplit

from petiole.errors import ConfigError, SettingTypeError, UnknownSettingError
from petiole.suggestions import closest
from petiole.urls import MASK, mask_url, mask_value

T = TypeVar("T")

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def split_server_url(
    url: str, *, scheme: str, component: str, form: str, no_auth: str
) -> SplitResult:
    """Split a component's ``scheme://netloc[?options]`` URL, refusing what it cannot be.

    For a store that takes no credentials and no path (its URL is servers and
    options): raises :class:`~petiole.errors.ConfigError`, the URL masked, for a
    malformed URL (an unbalanced ``[``), another scheme, a user name or password
    (``no_auth`` says why there is none), or a path or fragment (``form`` shows
    the right shape, e.g. ``memcached://host:port[,host:port]``).
    """
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{component} URL {shown!r} is malformed ({exc})") from exc
    if parts.scheme != scheme or not url.startswith(f"{scheme}://"):
        raise ConfigError(f"{component} URL {shown!r} does not start with {scheme}://")
    if "@" in parts.netloc:
        raise ConfigError(
            f"{component} URL {shown!r} carries a user name or password, but {no_auth}"
        )
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigError(f"{component} URL {shown!r} has a path; the form is {form}")
    return parts


def query_options(url: str, *, component: str) -> dict[str, str]:
    """The URL's query parameters, refusing a malformed query or a key given twice."""
    query = urlsplit(url).query
    if not query:
        return {}
    masked = mask_url(url)
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise ConfigError(f"{component} URL {masked!r} has a malformed query string") from exc
    found: dict[str, str] = {}
    for key, value in pairs:
        if key in found:
            raise ConfigError(f"{component} URL {masked!r} sets {key!r} twice")
        found[key] = value
    return found


def build_options(cls: type[T], raw: Mapping[str, Any], *, source: str) -> T:
    """An instance of the dataclass ``cls`` from ``raw``, converted and checked."""
    hints = get_type_hints(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in fields]
    declared_secret = {f.name for f in fields if f.metadata.get("secret")}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in hints or key not in names:
            raise UnknownSettingError(
                key, source=f"{source} (valid: {', '.join(names)})", suggestion=closest(key, names)
            )
        values[key] = convert(key, value, hints[key], source=source, secret=key in declared_secret)
    return cls(**values)


def convert(key: str, value: Any, kind: Any, *, source: str, secret: bool = False) -> Any:
    """``value`` as ``kind`` (str, bool, int or float, or one of them ``| None``),
    accepting strings from URLs; for an optional field, ``None`` or ``""`` is None.

    A refused value is shown masked (:func:`petiole.urls.mask_value`), as ``***``
    when ``secret`` or when the name holds a secret."""

    def refused(expected: str) -> SettingTypeError:
        shown = MASK if secret else mask_value(key, value)
        return SettingTypeError(key, source=source, expected=expected, got=shown)

    if get_origin(kind) in (Union, types.UnionType) and type(None) in get_args(kind):
        if value is None or value == "":
            return None
        [kind] = [a for a in get_args(kind) if a is not type(None)]
    if kind is str:
        if isinstance(value, str):
            return value
        raise refused("a string")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise refused("true or false")
    if kind in (int, float):
        number: Any = value
        if isinstance(value, str):
            try:
                number = kind(value.strip())
            except ValueError:
                number = None
        ok_type = (int,) if kind is int else (int, float)
        if (
            isinstance(number, ok_type)
            and not isinstance(number, bool)
            and number >= 0
            and number == number  # not NaN
        ):
            return kind(number)
        expected = "a whole number >= 0" if kind is int else "a number >= 0"
        raise refused(expected)
    raise TypeError(f"option {key!r} has a type options cannot have: {kind!r}")
