"""URL forms and options of the Cassandra result backend.

URL form::

    cassandra://[user:password@]host1[:port][,host2[:port]...]/keyspace[?option=value&...]

The keyspace defaults to ``petiole``; the port to 9042. With a
``secure_connect_bundle`` (DataStax Astra) the hosts are left out:
``cassandra://client_id:client_secret@/keyspace?secure_connect_bundle=/path/bundle.zip``.

Options come from the ``backend_options`` config table; query parameters of the
URL override them. Each is described in the plugin's README. Errors and logs
show the URL through :func:`petiole.urls.mask_url`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from petiole.component_options import build_options, query_options
from petiole.errors import ConfigError, SettingTypeError
from petiole.urls import mask_url, quote_part

SCHEME = "cassandra"
DEFAULT_PORT = 9042
DEFAULT_KEYSPACE = "petiole"
#: The consistency levels a user may name; LWTs take the two SERIAL ones.
CONSISTENCY_LEVELS = (
    "ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL",
    "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE",
)  # fmt: skip
SERIAL_LEVELS = ("SERIAL", "LOCAL_SERIAL")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")
_REPLICATION = re.compile(r"\d+|[A-Za-z0-9_.-]+:\d+(,[A-Za-z0-9_.-]+:\d+)*")
# Cassandra's longest TTL: 20 years.
MAX_TTL_S = 630_720_000
_MIN_TIMEOUT_S = 0.01


@dataclass(frozen=True, slots=True)
class CassandraOptions:
    """The user-settable options (see the README). Durations are seconds."""

    table: str = "petiole_results"
    read_consistency: str = "LOCAL_QUORUM"
    write_consistency: str = "LOCAL_QUORUM"
    serial_consistency: str = "LOCAL_SERIAL"
    result_ttl_s: float | None = None  # None: the ttl Petiole passes (its result_ttl_s)
    create_schema: bool = True
    replication: str = "1"
    local_dc: str = ""
    protocol_version: int = 0  # 0: the highest both sides speak
    tls: bool = False
    tls_ca_file: str = ""
    tls_certfile: str = ""
    tls_keyfile: str = ""
    tls_check_hostname: bool = True
    secure_connect_bundle: str = ""
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 12.0
    startup_timeout_s: float = 2.0
    reconnect_timeout_s: float = 60.0
    wait_poll_max_s: float = 0.5
    read_concurrency: int = 32
    max_result_bytes: int = 16 * 1024 * 1024 - 64 * 1024


@dataclass(frozen=True, slots=True)
class CassandraTarget:
    """A parsed URL: where to connect, as whom, and our options."""

    url: str  # as the user wrote it; shown only masked
    hosts: tuple[tuple[str, int], ...]
    keyspace: str
    username: str | None
    password: str | None
    options: CassandraOptions

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def hosts_text(self) -> str:
        if not self.hosts:
            return f"the secure connect bundle {self.options.secure_connect_bundle}"
        return ", ".join(_host_text(host, port) for host, port in self.hosts)

    def replication_cql(self) -> str:
        """The keyspace's replication map, as CQL."""
        spec = self.options.replication
        if spec.isdigit():
            return f"{{'class': 'SimpleStrategy', 'replication_factor': {int(spec)}}}"
        pairs = (item.split(":") for item in spec.split(","))
        dcs = ", ".join(f"'{dc}': {int(rf)}" for dc, rf in pairs)
        return f"{{'class': 'NetworkTopologyStrategy', {dcs}}}"


def _host_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_url(url: str, options: Mapping[str, Any], *, component: str) -> CassandraTarget:
    """Split ``url`` into hosts, credentials, keyspace and options (query parameters win).

    Raises :class:`~petiole.errors.ConfigError` for a URL of another scheme, a
    malformed host list or query, an unknown option (naming the valid ones) or a
    bad value.
    """
    masked = mask_url(url)
    scheme, sep, rest = url.partition("://")
    if scheme != SCHEME or not sep:
        raise ConfigError(f"{component} URL {masked!r} is not a cassandra:// URL")
    netloc, _, path_and_query = rest.partition("/")
    path = path_and_query.partition("?")[0]
    netloc = netloc.partition("?")[0]  # cassandra://host?x=1, without a keyspace
    userinfo, at, host_list = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    merged = {**options, **query_options(url, component=component)}
    built = _build(merged, source=f"the options of the {component} {masked}")
    hosts = _parse_hosts(host_list, masked=masked, component=component)
    if not hosts and not built.secure_connect_bundle:
        raise ConfigError(
            f"{component} URL {masked!r} names no host: use "
            "cassandra://host1[:port][,host2...]/keyspace, or give secure_connect_bundle"
        )
    keyspace = unquote(path.strip("/")) or DEFAULT_KEYSPACE
    if not _NAME.fullmatch(keyspace):
        raise ConfigError(
            f"{component} URL {masked!r}: keyspace {keyspace!r} must be a letter followed by "
            "up to 47 letters, digits or underscores"
        )
    return CassandraTarget(url, hosts, keyspace.lower(), username, password, built)


def _parse_hosts(text: str, *, masked: str, component: str) -> tuple[tuple[str, int], ...]:
    hosts: list[tuple[str, int]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item.startswith("["):  # [::1]:9042
            host, _, port_text = item[1:].partition("]")
            port_text = port_text.removeprefix(":")
        elif item.count(":") == 1:
            host, _, port_text = item.partition(":")
        else:
            host, port_text = item, ""
        if not host or (port_text and not port_text.isdigit()):
            raise ConfigError(f"{component} URL {masked!r}: bad host {quote_part(item, masked)}")
        port = int(port_text) if port_text else DEFAULT_PORT
        if not 0 < port < 65536:
            raise ConfigError(f"{component} URL {masked!r}: bad port in {quote_part(item, masked)}")
        hosts.append((host, port))
    return tuple(hosts)


def _build(raw: Mapping[str, Any], *, source: str) -> CassandraOptions:
    """Converted by :func:`petiole.component_options.build_options`; consistency
    levels upper-cased; then the bounds it does not know (:func:`_check`)."""
    built = build_options(CassandraOptions, raw, source=source)
    built = replace(
        built,
        **{
            key: getattr(built, key).upper()
            for key in ("read_consistency", "write_consistency", "serial_consistency")
        },
    )
    _check(built, source=source)
    return built


def _check(built: CassandraOptions, *, source: str) -> None:
    for key in ("read_consistency", "write_consistency"):
        if getattr(built, key) not in CONSISTENCY_LEVELS:
            raise SettingTypeError(
                key,
                source=source,
                expected=" or ".join(CONSISTENCY_LEVELS),
                got=getattr(built, key),
            )
    if built.serial_consistency not in SERIAL_LEVELS:
        raise SettingTypeError(
            "serial_consistency",
            source=source,
            expected=" or ".join(SERIAL_LEVELS),
            got=built.serial_consistency,
        )
    if not _NAME.fullmatch(built.table) or len(built.table) > 40:
        raise SettingTypeError(
            "table",
            source=source,
            expected="a letter followed by up to 39 letters, digits or underscores",
            got=built.table,
        )
    if not _REPLICATION.fullmatch(built.replication):
        raise SettingTypeError(
            "replication",
            source=source,
            expected="a replication factor (3) or datacenters with theirs (dc1:3,dc2:3)",
            got=built.replication,
        )
    if built.protocol_version not in (0, 3, 4, 5):
        raise SettingTypeError(
            "protocol_version", source=source, expected="0 (negotiate), 3, 4 or 5",
            got=built.protocol_version,
        )  # fmt: skip
    if built.read_concurrency < 1 or built.max_result_bytes < 1:
        key = "read_concurrency" if built.read_concurrency < 1 else "max_result_bytes"
        raise SettingTypeError(key, source=source, expected="a whole number >= 1", got=0)
    # A zero timeout or poll would fail every request, or spin.
    for key in ("wait_poll_max_s", "request_timeout_s", "connect_timeout_s"):
        if getattr(built, key) < _MIN_TIMEOUT_S:
            raise SettingTypeError(
                key,
                source=source,
                expected=f"a number of seconds >= {_MIN_TIMEOUT_S:g}",
                got=getattr(built, key),
            )
    if built.result_ttl_s is not None and built.result_ttl_s > MAX_TTL_S:
        raise SettingTypeError(
            "result_ttl_s",
            source=source,
            expected=f"at most {MAX_TTL_S} seconds (Cassandra's longest TTL)",
            got=built.result_ttl_s,
        )
