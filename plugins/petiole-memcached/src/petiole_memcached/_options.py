"""The ``memcached://`` URL and the backend's options, validated once.

URL form::

    memcached://host[:port][,host[:port]...][/][?option=value&...]

The port defaults to 11211; an IPv6 address goes in brackets
(``memcached://[::1]:11211``). Several servers share the keys between them
(see :mod:`petiole_memcached._servers`). memcached's text protocol has no
authentication, so a user name or password in the URL is refused rather than
silently ignored.

Options come from the ``backend_options`` config table; query parameters of
the URL override them. See the plugin's README for each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from petiole.component_options import build_options, query_options, split_server_url
from petiole.errors import ConfigError, SettingTypeError
from petiole.urls import mask_url, quote_part

SCHEME = "memcached"
COMPONENT = "memcached result backend"
DEFAULT_PORT = 11211
#: memcached's own default item size limit (its ``-I`` option).
DEFAULT_MAX_ITEM_BYTES = 1024 * 1024
#: The smallest ``max_item_bytes`` accepted: room for a key, headers and a small result.
MIN_MAX_ITEM_BYTES = 4096
#: memcached refuses ``-I`` above 1 GiB.
MAX_MAX_ITEM_BYTES = 1024 * 1024 * 1024
_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HOST = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class MemcachedOptions:
    """The user-settable options (see the README)."""

    key_prefix: str = "petiole"
    max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES
    connect_timeout_s: float = 5.0
    socket_timeout_s: float = 10.0
    startup_timeout_s: float = 2.0
    wait_poll_max_s: float = 0.5


@dataclass(frozen=True, slots=True)
class MemcachedTarget:
    """A parsed URL: the servers, in the order given, and the options."""

    url: str
    servers: tuple[tuple[str, int], ...]
    options: MemcachedOptions

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def server_names(self) -> tuple[str, ...]:
        """``host:port`` per server (IPv6 hosts bracketed), as pymemcache names them too."""
        return tuple(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.servers)


def parse_url(url: str, options: Mapping[str, Any]) -> MemcachedTarget:
    """Split ``url`` into servers and options (query parameters win over ``options``).

    Raises :class:`~petiole.errors.ConfigError` for a URL of another scheme, a
    user name or password, a path, a malformed server list, an unknown option
    (naming the valid ones) or a bad value.
    """
    shown = mask_url(url)
    parts = split_server_url(
        url,
        scheme=SCHEME,
        component=COMPONENT,
        form="memcached://host:port[,host:port]",
        no_auth="memcached's text protocol has no authentication: put it on a private network",
    )
    servers = _servers(parts.netloc, shown)
    raw = {**options, **query_options(url, component=COMPONENT)}
    built = _checked(
        build_options(MemcachedOptions, raw, source=f"the options of the {COMPONENT} {shown}"),
        source=f"the options of the {COMPONENT} {shown}",
    )
    return MemcachedTarget(url, servers, built)


def _servers(netloc: str, shown: str) -> tuple[tuple[str, int], ...]:
    if not netloc:
        raise ConfigError(
            f"{COMPONENT} URL {shown!r} names no server; the form is memcached://host:port"
        )
    servers: list[tuple[str, int]] = []
    for item in netloc.split(","):
        server = _server(item.strip(), shown)
        if server in servers:
            raise ConfigError(
                f"{COMPONENT} URL {shown!r} names {quote_part(item.strip(), shown)} twice"
            )
        servers.append(server)
    return tuple(servers)


def _server(item: str, shown: str) -> tuple[str, int]:
    quoted = quote_part(item, shown)
    host, port_text = item, ""
    if item.startswith("["):
        end = item.find("]")
        if end < 0 or end == 1:
            raise ConfigError(f"{COMPONENT} URL {shown!r}: malformed IPv6 address in {quoted}")
        host, rest = item[1:end], item[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"{COMPONENT} URL {shown!r}: malformed server {quoted}")
        port_text = rest[1:]
    elif ":" in item:
        host, port_text = item.rsplit(":", 1)
    if not host or not (item.startswith("[") or _HOST.fullmatch(host)):
        raise ConfigError(f"{COMPONENT} URL {shown!r}: malformed server {quoted}")
    if port_text == "" and item.endswith(":"):
        raise ConfigError(f"{COMPONENT} URL {shown!r}: empty port in {quoted}")
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"{COMPONENT} URL {shown!r}: bad port in {quoted}")
        port = int(port_text)
    return host, port


def _checked(built: MemcachedOptions, *, source: str) -> MemcachedOptions:
    """The bounds :func:`build_options` does not know: key characters, memcached's
    ``-I`` range, and timeouts above zero (a 0 s socket timeout fails every call;
    ``startup_timeout_s`` may be 0: no retry)."""
    if not _PREFIX.fullmatch(built.key_prefix):
        raise SettingTypeError(
            "key_prefix",
            source=source,
            expected="1-64 characters among letters, digits, '_', '.' and '-'",
            got=built.key_prefix,
        )
    if not MIN_MAX_ITEM_BYTES <= built.max_item_bytes <= MAX_MAX_ITEM_BYTES:
        raise SettingTypeError(
            "max_item_bytes",
            source=source,
            expected=f"between {MIN_MAX_ITEM_BYTES} and {MAX_MAX_ITEM_BYTES} (memcached's -I)",
            got=built.max_item_bytes,
        )
    for field in fields(built):
        value = getattr(built, field.name)
        if field.name.endswith("_s") and field.name != "startup_timeout_s" and value <= 0:
            raise SettingTypeError(
                field.name, source=source, expected="a number of seconds > 0", got=value
            )
    return built
