"""URL forms and options of the MongoDB transport and result backend.

URL forms (MongoDB connection strings, as pymongo takes them)::

    mongodb://[user:password@]host[:port][,host[:port]...][/database][?options]
    mongodb+srv://[user:password@]cluster.example.net[/database][?options]

The path names the database (default ``petiole``). Query parameters are of two
kinds: this plugin's own options (the :class:`MongoOptions` fields), which are
taken out of the URL, and MongoDB connection-string options
(``replicaSet``, ``authSource``, ``tls``, ``serverSelectionTimeoutMS``, ...),
which stay in it for pymongo. Both kinds may also be set in the
``broker_options`` / ``backend_options`` config tables; the URL wins. A name
that is neither is an error that suggests the closest valid one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pymongo.common import URI_OPTIONS_ALIAS_MAP, URI_OPTIONS_VALIDATOR_MAP

from petiole.component_options import build_options
from petiole.errors import ConfigError, SettingTypeError, UnknownSettingError
from petiole.suggestions import closest
from petiole.urls import mask_url, quote_part

SCHEMES = ("mongodb", "mongodb+srv")
DEFAULT_DATABASE = "petiole"

# Connection-string option names pymongo knows, lower-cased (it matches them so).
_CLIENT_OPTIONS = frozenset(URI_OPTIONS_VALIDATOR_MAP) | {
    alias.lower() for aliases in URI_OPTIONS_ALIAS_MAP.values() for alias in aliases
}


@dataclass(frozen=True, slots=True)
class MongoOptions:
    """This plugin's own options, for both components (see the README)."""

    collection_prefix: str = "petiole"
    poll_interval_ms: int = 200
    change_streams: bool = True
    transactions: bool = True


@dataclass(frozen=True, slots=True)
class MongoTarget:
    """A parsed URL: what pymongo needs to connect, and our options."""

    url: str  # as the user wrote it; shown masked in errors and logs
    client_url: str  # our options taken out of the query, for pymongo
    client_options: Mapping[str, Any]  # connection-string options from the config table
    database: str
    options: MongoOptions

    @property
    def masked_url(self) -> str:
        return masked(self.url)


def masked(url: str) -> str:
    """``url`` with its password and secret query values (``authMechanismProperties``,
    ``tlsCertificateKeyFilePassword``) masked, for errors and logs."""
    return mask_url(url)


def parse_url(url: str, options: Mapping[str, Any], *, component: str) -> MongoTarget:
    """Split ``url`` and ``options`` into pymongo's part and ours (the URL wins).

    Raises :class:`~petiole.errors.ConfigError` for a URL of another scheme, a
    malformed query, a name that is neither our option nor a MongoDB
    connection-string option (naming the valid ones), or a bad value.
    """
    shown = masked(url)
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ConfigError(f"{component} URL {shown!r} is not a mongodb:// or mongodb+srv:// URL")
    parts = urlsplit(url)
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise ConfigError(f"{component} URL {shown!r} has a malformed query string") from exc
    ours = {f.name for f in fields(MongoOptions)}
    source = f"the options of the {component} {shown}"
    valid = f"{source} (valid: {', '.join(sorted(ours))}, or a MongoDB connection-string option)"
    merged: dict[str, Any] = {}
    client_options: dict[str, Any] = {}
    for key, value in options.items():
        if key in ours:
            merged[key] = value
        elif key.lower() in _CLIENT_OPTIONS:
            client_options[key] = value
        else:
            raise UnknownSettingError(key, source=valid, suggestion=closest(key, sorted(ours)))
    client_query: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, value in pairs:
        if key.lower() in seen:
            raise ConfigError(f"{component} URL {shown!r} sets {key!r} twice")
        seen.add(key.lower())
        if key in ours:
            merged[key] = value
        elif key.lower() in _CLIENT_OPTIONS:
            client_query.append((key, value))
            # The URL wins over the table, whatever the spelling's case.
            client_options = {k: v for k, v in client_options.items() if k.lower() != key.lower()}
        else:
            raise UnknownSettingError(key, source=valid, suggestion=closest(key, sorted(ours)))
    query = urlencode(client_query, quote_via=quote, safe=":,")
    client_url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    database = parts.path.lstrip("/") or DEFAULT_DATABASE
    if any(ch in database for ch in '/\\. "$') or len(database) > 63:
        raise ConfigError(
            f"{component} URL {shown!r} names an invalid database {quote_part(database, shown)}"
        )
    return MongoTarget(url, client_url, client_options, database, _build(merged, source=source))


def _build(raw: Mapping[str, Any], *, source: str) -> MongoOptions:
    """Our options, converted by :func:`petiole.component_options.build_options`,
    with the bounds it does not know."""
    built = build_options(MongoOptions, raw, source=source)
    if built.poll_interval_ms < 1:
        raise SettingTypeError(
            "poll_interval_ms",
            source=source,
            expected="a whole number >= 1",
            got=raw.get("poll_interval_ms"),
        )
    prefix = built.collection_prefix
    if not prefix or "$" in prefix or "\x00" in prefix or prefix.startswith("system."):
        raise SettingTypeError(
            "collection_prefix",
            source=source,
            expected="a non-empty collection name prefix without '$'",
            got=prefix,
        )
    return built
