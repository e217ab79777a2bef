"""URL forms and options of the Redis transport and result backend.

URL forms::

    redis://[[user]:password@]host[:port][/db]
    rediss://[[user]:password@]host[:port][/db]          TLS
    unix://[[user]:password@]/path/to/redis.sock[?db=N]

Options come from the ``broker_options`` / ``backend_options`` config tables;
query parameters of the URL override them. See the plugin's README for each.
Errors and logs show the URL through :func:`petiole.urls.mask_url`: the password
and secret-named query values (``?password=...``) are masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

from petiole.component_options import build_options
from petiole.errors import ConfigError, SettingTypeError
from petiole.urls import ENCODE_HINT, mask_url

SCHEMES = ("redis", "rediss", "unix")
CERT_REQS = ("required", "optional", "none")
# The broker's key layouts: "streams" (the default, see streams.py) or "lists"
# (transport.py, the default before it).
LAYOUTS = ("streams", "lists")
_DB_PATH = re.compile(r"/?\d*")
# A spin longer than a wake-up across CPUs costs more than the wake-up saves.
_MAX_REPLY_SPIN_US = 1000.0


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """The user-settable options of both components (see the README)."""

    key_prefix: str = "petiole"
    connect_timeout_s: float = 5.0
    socket_timeout_s: float = 30.0
    reply_spin_us: float = 40.0  # 0 = always sleep in the kernel for a reply
    reconnect_timeout_s: float = 60.0
    startup_timeout_s: float = 2.0
    orphan_check_interval_s: float = 60.0  # 0 = never
    max_connections: int = 0  # 0 = no limit
    ssl_ca_certs: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_cert_reqs: str = "required"
    ssl_check_hostname: bool = True
    layout: str = "streams"  # broker only: one of LAYOUTS


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed URL: where to connect (:func:`petiole_redis._connection.address_of`)
    and our options."""

    url: str  # as the user wrote it; shown masked in errors and logs
    client_url: str  # our options removed from the query
    options: RedisOptions

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)


def parse_url(url: str, options: Mapping[str, Any], *, component: str) -> RedisTarget:
    """Split ``url`` into where to connect and our options (query parameters win).

    Raises :class:`~petiole.errors.ConfigError` for a URL of another scheme, a
    malformed query, an unknown option (naming the valid ones) or a bad value.
    """
    masked = mask_url(url)
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"{component} URL {masked!r} is not a redis://, rediss:// or unix:// URL")
    if parts.scheme == "unix" and not parts.path:
        raise ConfigError(
            f"{component} URL {masked!r} names no socket path: use unix:///path/to/redis.sock"
        )
    _check_host_and_db(parts, masked=masked, component=component)
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise ConfigError(f"{component} URL {masked!r} has a malformed query string") from exc
    client_query: list[tuple[str, str]] = []
    merged = dict(options)
    seen: set[str] = set()
    for key, value in pairs:
        if key in seen:
            raise ConfigError(f"{component} URL {masked!r} sets {key!r} twice")
        seen.add(key)
        if key == "db" and parts.scheme == "unix":
            client_query.append((key, value))
        else:
            merged[key] = value
    # Rebuilt by hand: urlunsplit drops the "//" of unix:///path.
    client_url = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if client_query:
        client_url += f"?{urlencode(client_query)}"
    source = f"the options of the {component} {masked}"
    return RedisTarget(url, client_url, _build(merged, source=source))


def _check_host_and_db(parts: SplitResult, *, masked: str, component: str) -> None:
    """Refuse what would be misread, without quoting it: a ``/``, ``?`` or
    ``#`` left in a password ends the host there, and the rest of the password
    would become a port, a database number or a fragment in its errors."""
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise ConfigError(
            f"{component} URL {masked!r} has a malformed host or port; {ENCODE_HINT}"
        ) from None
    if parts.fragment or (parts.scheme != "unix" and not _DB_PATH.fullmatch(parts.path)):
        raise ConfigError(
            f"{component} URL {masked!r}: the path must be a database number "
            f"(redis://host:6379/0) and there is no '#' part; {ENCODE_HINT}"
        )


def _build(raw: Mapping[str, Any], *, source: str) -> RedisOptions:
    built = build_options(RedisOptions, raw, source=source)
    if not built.key_prefix or ":" in built.key_prefix or "{" in built.key_prefix:
        raise SettingTypeError(
            "key_prefix",
            source=source,
            expected="a non-empty name without ':' or '{'",
            got=built.key_prefix,
        )
    if built.socket_timeout_s < 1.0:
        # Blocking reads wait in slices within the socket timeout.
        raise SettingTypeError(
            "socket_timeout_s",
            source=source,
            expected="a number of seconds >= 1.0",
            got=built.socket_timeout_s,
        )
    if not 0.0 <= built.reply_spin_us <= _MAX_REPLY_SPIN_US:
        raise SettingTypeError(
            "reply_spin_us",
            source=source,
            expected=f"a number of microseconds from 0 to {_MAX_REPLY_SPIN_US:g}",
            got=built.reply_spin_us,
        )
    if built.layout not in LAYOUTS:
        raise SettingTypeError(
            "layout", source=source, expected=" or ".join(map(repr, LAYOUTS)), got=built.layout
        )
    if built.ssl_cert_reqs not in CERT_REQS:
        raise SettingTypeError(
            "ssl_cert_reqs", source=source, expected=" or ".join(CERT_REQS), got=built.ssl_cert_reqs
        )
    return built
