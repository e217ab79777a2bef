"""URL forms and options of the RabbitMQ transport.

URL forms::

    amqp://[user[:password]@]host[:port][,host[:port]...][/vhost][?option=value...]
    amqps://...                                      TLS (port 5671 by default)

The vhost is the path without its leading ``/``, percent-decoded: ``/`` (the
default vhost) is written ``amqp://host//`` as in Celery, ``amqp://host/%2F``,
or left out. Several hosts (a cluster) are tried in turn, each on its own port
or the scheme's. Options come from the ``broker_options`` config table; query
parameters of the URL override them. Errors and logs show the URL masked.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

import pika

from petiole.component_options import build_options, query_options
from petiole.errors import ConfigError, SettingTypeError
from petiole.urls import ENCODE_HINT, mask_url

SCHEMES = ("amqp", "amqps")
QUEUE_TYPES = ("quorum", "classic")
CERT_REQS = ("required", "optional", "none")
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
# RabbitMQ refuses messages over max_message_size (128 MiB by default on 3.10); the
# transport refuses them first, with a clear error, below a smaller default of its own.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """How to reach RabbitMQ: the options the transport and ``rpc://`` share."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    heartbeat_s: int = 60
    connect_timeout_s: float = 5.0
    reconnect_timeout_s: float = 60.0
    # How long a call waits for the broker's answer on a connection that is up.
    reply_timeout_s: float = 30.0
    ssl_ca_certs: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_cert_reqs: str = "required"
    ssl_check_hostname: bool = True
    client_name: str = field(default="petiole")


@dataclass(frozen=True, slots=True)
class AmqpOptions(ConnectionOptions):
    """The transport's options (see the plugin's README for each)."""

    queue_type: str = "quorum"
    # Quorum queues only: RabbitMQ dead-letters a message returned this many times
    # (deliveries lost with their connection), a backstop behind the worker's own
    # max_deliveries, which normally catches a poison message first, with its reason.
    delivery_limit: int = 20
    # Binary delay levels: delays up to 2**delay_levels - 1 seconds are held by the
    # broker; the core re-delays longer ones.
    delay_levels: int = 22
    # Not the broker's setting (AMQP cannot read it): what the worker is told it is.
    consumer_timeout_s: float = 1800.0
    # After creating a queue, publish into it only this long later: RabbitMQ 3.10 can lose a
    # queue created moments before a crash (README): past Erlang's disk_log write
    # cache (2 s) with a margin. 0 turns the wait off.
    new_queue_settle_s: float = 2.5


@dataclass(frozen=True, slots=True)
class RpcOptions(ConnectionOptions):
    """The ``rpc://`` result backend's options (see the plugin's README)."""

    # A client's reply queue outlives its connection this long (results sent while
    # it reconnects wait there), then RabbitMQ deletes it.
    reply_expires_s: float = 60.0
    # Ready records kept for reading, oldest dropped first (none a wait is waiting for).
    max_cached_results: int = 100_000


OptionsT = TypeVar("OptionsT", bound=ConnectionOptions)


@dataclass(frozen=True, slots=True)
class AmqpTarget(Generic[OptionsT]):
    """A parsed URL: where to connect, as whom, and the options."""

    url: str = field(repr=False)  # as the user wrote it; shown masked
    scheme: str
    hosts: tuple[tuple[str, int], ...]
    vhost: str
    user: str
    password: str = field(repr=False)
    options: OptionsT

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def parameters(self, *, heartbeat: bool = True) -> list[pika.ConnectionParameters]:
        """pika's connection parameters, one per host, in the order to try them."""
        opts = self.options
        credentials = pika.PlainCredentials(self.user, self.password)
        ssl_options = self._ssl_options() if self.scheme == "amqps" else None
        return [
            pika.ConnectionParameters(
                host=host,
                port=port,
                virtual_host=self.vhost,
                credentials=credentials,
                heartbeat=opts.heartbeat_s if heartbeat else 0,
                connection_attempts=1,
                socket_timeout=opts.connect_timeout_s,
                stack_timeout=opts.connect_timeout_s * 2,
                blocked_connection_timeout=opts.reply_timeout_s,
                ssl_options=ssl_options,
                client_properties={"connection_name": opts.client_name},
            )
            for host, port in self.hosts
        ]

    def _ssl_options(self) -> pika.SSLOptions:
        opts = self.options
        context = ssl.create_default_context(cafile=opts.ssl_ca_certs or None)
        if opts.ssl_certfile:
            context.load_cert_chain(opts.ssl_certfile, opts.ssl_keyfile or None)
        context.check_hostname = opts.ssl_check_hostname and opts.ssl_cert_reqs != "none"
        context.verify_mode = {
            "required": ssl.CERT_REQUIRED,
            "optional": ssl.CERT_OPTIONAL,
            "none": ssl.CERT_NONE,
        }[opts.ssl_cert_reqs]
        return pika.SSLOptions(context, server_hostname=self.hosts[0][0])


def parse_url(
    url: str, options: Mapping[str, Any], *, component: str, options_type: type[OptionsT]
) -> AmqpTarget[OptionsT]:
    """Split ``url`` into hosts, vhost, credentials and options (query parameters win).

    Raises :class:`~petiole.errors.ConfigError` for another scheme, a malformed host
    or port, an unknown option (naming the valid ones) or a bad value.
    """
    masked = mask_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{component} URL {masked!r} is malformed ({exc})") from exc
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"{component} URL {masked!r} is not an amqp:// or amqps:// URL")
    if parts.fragment:
        raise ConfigError(f"{component} URL {masked!r} has a '#' part; {ENCODE_HINT}")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    hosts = tuple(
        _host_and_port(item, DEFAULT_PORTS[parts.scheme], masked=masked, component=component)
        for item in (hostlist or "localhost").split(",")
    )
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    merged = {**options, **query_options(url, component=component)}
    built = _build(options_type, merged, source=f"the options of the {component} {masked}")
    return AmqpTarget(
        url=url,
        scheme=parts.scheme,
        hosts=hosts,
        vhost=vhost,
        user=unquote(user) if userinfo else "guest",
        password=unquote(password) if userinfo else "guest",
        options=built,
    )


def _host_and_port(item: str, default: int, *, masked: str, component: str) -> tuple[str, int]:
    try:
        probe = urlsplit(f"//{item}")
        port = probe.port
    except ValueError:
        raise ConfigError(
            f"{component} URL {masked!r} has a malformed host or port; {ENCODE_HINT}"
        ) from None
    host = probe.hostname
    if not host:
        raise ConfigError(f"{component} URL {masked!r} names an empty host")
    return host, port or default


# Each option's range, checked when the options type has it.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "queue_type": (lambda v: v in QUEUE_TYPES, " or ".join(QUEUE_TYPES)),
    "delivery_limit": (lambda v: v >= 0, "a whole number >= 0 (0: no limit)"),
    "delay_levels": (lambda v: 1 <= v <= 32, "a whole number from 1 to 32"),
    "max_message_bytes": (lambda v: v > 0, "a number of bytes > 0"),
    "heartbeat_s": (lambda v: v >= 0, "a whole number of seconds >= 0 (0: off)"),
    "connect_timeout_s": (lambda v: v > 0, "a number of seconds > 0"),
    "reconnect_timeout_s": (lambda v: v >= 0, "a number of seconds >= 0"),
    "reply_timeout_s": (lambda v: v > 0, "a number of seconds > 0"),
    "ssl_cert_reqs": (lambda v: v in CERT_REQS, " or ".join(CERT_REQS)),
    "consumer_timeout_s": (lambda v: v > 0, "a number of seconds > 0"),
    "new_queue_settle_s": (lambda v: v >= 0, "a number of seconds >= 0 (0: no wait)"),
    "reply_expires_s": (lambda v: v >= 1, "a number of seconds >= 1"),
    "max_cached_results": (lambda v: v > 0, "a whole number > 0"),
}


def _build(options_type: type[OptionsT], raw: Mapping[str, Any], *, source: str) -> OptionsT:
    built = build_options(options_type, raw, source=source)
    for name, (ok, expected) in _CHECKS.items():
        if hasattr(built, name) and not ok(getattr(built, name)):
            raise SettingTypeError(name, source=source, expected=expected, got=getattr(built, name))
    return built
