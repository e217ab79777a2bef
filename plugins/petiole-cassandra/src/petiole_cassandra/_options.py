"""URL forms and options of the Cassandra result backend.

URL form::

    cassandra://[user:password@]host1[:port][,host2[:port]...]/keyspace[?option=value&...]

The keyspace defaults to ``petiole``; the port to 9042. With a
``secure_connect_bundle`` (DataStax Astra) the hosts are left out:
``cassandra://client_id:client_secret@/keyspace?secure_connect_bundle=/path/bundle.zip``.

Options come from the ``backend_options`` config table; query parameters of the
URL override them. Each is described in the plugin's README.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import parse_qsl, unquote

from petiole.errors import ConfigError, SettingTypeError, UnknownSettingError

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


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and errors).

    Done by hand: ``urllib`` cannot parse a port out of a multi-host netloc.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hosts}{slash}{tail}"


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
    path, _, query = path_and_query.partition("?")
    if "?" in netloc:  # cassandra://host?x=1, without a keyspace
        netloc, _, query = netloc.partition("?")
    userinfo, at, host_list = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ConfigError(f"{component} URL {masked!r} has a malformed query string") from exc
    merged = dict(options)
    seen: set[str] = set()
    for key, value in pairs:
        if key in seen:
            raise ConfigError(f"{component} URL {masked!r} sets {key!r} twice")
        seen.add(key)
        merged[key] = value
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
            raise ConfigError(f"{component} URL {masked!r}: bad host {item!r}")
        port = int(port_text) if port_text else DEFAULT_PORT
        if not 0 < port < 65536:
            raise ConfigError(f"{component} URL {masked!r}: bad port in {item!r}")
        hosts.append((host, port))
    return tuple(hosts)


def _build(raw: Mapping[str, Any], *, source: str) -> CassandraOptions:
    valid = {f.name: str(f.type) for f in fields(CassandraOptions)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in valid:
            close = difflib.get_close_matches(key, list(valid), n=1)
            raise UnknownSettingError(
                key,
                source=f"{source} (valid: {', '.join(valid)})",
                suggestion=close[0] if close else None,
            )
        changes[key] = _convert(key, value, valid[key], source=source)
    built = replace(CassandraOptions(), **changes)
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


def _convert(key: str, value: Any, kind: str, *, source: str) -> Any:
    if kind == "str":
        if isinstance(value, str):
            return value.upper() if key.endswith("_consistency") else value
        raise SettingTypeError(key, source=source, expected="a string", got=value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise SettingTypeError(key, source=source, expected="true or false", got=value)
    if kind == "int":
        number: Any = value
        if isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                number = None
        if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
            return number
        raise SettingTypeError(key, source=source, expected="a whole number >= 0", got=value)
    if kind == "float | None" and (value is None or value == ""):
        return None
    seconds: Any = value
    if isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            seconds = None
    minimum = 0.01 if key in ("wait_poll_max_s", "request_timeout_s", "connect_timeout_s") else 0.0
    if (
        isinstance(seconds, (int, float))
        and not isinstance(seconds, bool)
        and minimum <= seconds <= (MAX_TTL_S if key == "result_ttl_s" else float("inf"))
    ):
        return float(seconds)
    raise SettingTypeError(
        key, source=source, expected=f"a number of seconds >= {minimum:g}", got=value
    )
