"""URL forms, options, and the errors a user can cause at start-up."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import pika
import pytest
from petiole_amqp import _topology as topo
from petiole_amqp._options import AmqpOptions, AmqpTarget, parse_url
from petiole_amqp.testing import RabbitServer
from petiole_amqp.transport import AmqpTransport, create_transport
from pika.adapters.blocking_connection import BlockingChannel

import petiole
from petiole.errors import ConfigError, SettingTypeError, TransportError, UnknownSettingError
from petiole.plugin_api import free_port
from petiole.testing import unique_name
from petiole.urls import mask_url

SECRET = "s3cret"
# Every start-up failure is a hang guard away from a test timeout, not a measurement.
HANG_GUARD_S = 10.0


def parse(url: str, options: Mapping[str, Any] | None = None) -> AmqpTarget:
    return parse_url(url, options or {}, component="broker", options_type=AmqpOptions)


# -- URL forms ------------------------------------------------------------------------


def test_host_port_and_credentials_default_to_localhost_5672_guest() -> None:
    target = parse("amqp://rabbit.example")

    assert target.hosts == (("rabbit.example", 5672),)
    assert (target.user, target.password) == ("guest", "guest")
    assert target.vhost == "/"


def test_amqps_defaults_to_port_5671() -> None:
    assert parse("amqps://rabbit.example").hosts == (("rabbit.example", 5671),)


def test_credentials_are_percent_decoded() -> None:
    target = parse("amqp://us%40er:p%2Fw%3Ad%23@h/")

    assert (target.user, target.password) == ("us@er", "p/w:d#")


def test_an_unencoded_at_sign_in_the_password_belongs_to_the_password() -> None:
    target = parse("amqp://user:p@ss@h:5673/")

    assert target.password == "p@ss"
    assert target.hosts == (("h", 5673),)


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://h//", "/"),
        ("amqp://h/%2F", "/"),
        ("amqp://h", "/"),
        ("amqp://h/", "/"),
        ("amqp://h/prod", "prod"),
        ("amqp://h/a%2Fb", "a/b"),
    ],
)
def test_vhost_is_the_path_without_its_slash_percent_decoded(url: str, vhost: str) -> None:
    assert parse(url).vhost == vhost


def test_several_hosts_each_take_their_own_port_or_the_default() -> None:
    target = parse("amqp://u:p@h1:5673,h2/v")

    assert target.hosts == (("h1", 5673), ("h2", 5672))
    assert (target.user, target.password, target.vhost) == ("u", "p", "v")
    assert [(p.host, p.port) for p in target.parameters()] == [("h1", 5673), ("h2", 5672)]


def test_url_query_overrides_the_options_table() -> None:
    target = parse(
        "amqp://h/?queue_type=classic&delay_levels=5",
        {"queue_type": "quorum", "delay_levels": 10, "heartbeat_s": 7},
    )

    assert target.options.queue_type == "classic"
    assert target.options.delay_levels == 5
    assert target.options.heartbeat_s == 7


def test_parameters_carry_host_vhost_credentials_heartbeat_and_timeouts() -> None:
    target = parse(
        f"amqp://bob:{SECRET}@rabbit.example:5673/prod",
        {"heartbeat_s": 15, "connect_timeout_s": 2.5, "client_name": "billing"},
    )

    [params] = target.parameters()

    assert (params.host, params.port, params.virtual_host) == ("rabbit.example", 5673, "prod")
    assert isinstance(params.credentials, pika.PlainCredentials)
    assert params.credentials.username == "bob"
    assert params.credentials.password == SECRET
    assert params.heartbeat == 15
    assert params.socket_timeout == 2.5
    assert params.connection_attempts == 1
    assert params.ssl_options is None
    assert params.client_properties == {"connection_name": "billing"}


def test_parameters_without_heartbeat_turn_it_off() -> None:
    target = parse("amqp://h/", {"heartbeat_s": 15})

    assert [p.heartbeat for p in target.parameters(heartbeat=False)] == [0]


def test_amqps_parameters_use_tls_with_the_first_host_as_server_name() -> None:
    target = parse("amqps://h1,h2:5999/", {"ssl_cert_reqs": "none"})

    params = target.parameters()

    assert [(p.host, p.port) for p in params] == [("h1", 5671), ("h2", 5999)]
    for p in params:
        assert p.ssl_options is not None
        assert p.ssl_options.server_hostname == "h1"
        assert p.ssl_options.context.verify_mode == ssl.CERT_NONE
        assert p.ssl_options.context.check_hostname is False


# -- errors a user can cause ------------------------------------------------------------


def refused(url: str, options: Mapping[str, Any] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(url, options)
    assert SECRET not in str(info.value)
    return info.value


def test_url_of_another_scheme_is_a_config_error() -> None:
    error = refused(f"redis://u:{SECRET}@h:6379/0")

    assert "not an amqp:// or amqps:// URL" in str(error)
    assert "redis://u:***@h:6379/0" in str(error)


@pytest.mark.parametrize("host", ["h:notaport", "h:99999", "h1,h2:x"])
def test_malformed_port_is_a_config_error(host: str) -> None:
    error = refused(f"amqp://u:{SECRET}@{host}/v")

    assert "malformed host or port" in str(error)
    assert f"amqp://u:***@{host}/v" in str(error)


def test_password_with_an_unencoded_slash_is_refused_without_showing_it() -> None:
    error = refused(f"amqp://u:s3/{SECRET}@h/v")

    assert "must be percent-encoded" in str(error)


@pytest.mark.parametrize("hosts", [":5673", "h1,,h2", "h1,"])
def test_empty_host_is_a_config_error(hosts: str) -> None:
    error = refused(f"amqp://u:{SECRET}@{hosts}/v")

    assert "names an empty host" in str(error)


def test_fragment_is_a_config_error() -> None:
    error = refused(f"amqp://u:{SECRET}@h/v#part")

    assert "has a '#' part" in str(error)


def test_password_with_an_unencoded_hash_is_refused_without_showing_it() -> None:
    error = refused(f"amqp://u:zq9#{SECRET}@h/v")

    assert "has a '#' part" in str(error)
    assert "zq9" not in str(error)


def given(where: str, name: str, value: object) -> tuple[str, dict[str, object]]:
    """A URL and an options table that set ``name`` in the table or in the query."""
    base = f"amqp://u:{SECRET}@h/v"
    if where == "table":
        return base, {name: value}
    return f"{base}?{name}={value}", {}


@pytest.mark.parametrize("where", ["table", "query"])
def test_unknown_option_names_the_valid_ones_and_the_close_one(where: str) -> None:
    url, options = given(where, "queue_tpye", "classic")
    with pytest.raises(UnknownSettingError) as info:
        parse(url, options)

    message = str(info.value)
    assert SECRET not in message
    assert "'queue_tpye'" in message
    assert "did you mean 'queue_type'" in message
    assert "delivery_limit" in message
    assert "reconnect_timeout_s" in message
    assert "amqp://u:***@h/v" in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("queue_type", "stream", "quorum or classic"),
        ("delivery_limit", -1, "a whole number >= 0"),
        ("delay_levels", 0, "a whole number from 1 to 32"),
        ("delay_levels", 33, "a whole number from 1 to 32"),
        ("heartbeat_s", -1, "a whole number >= 0"),
        ("connect_timeout_s", 0, "a number of seconds > 0"),
        ("ssl_cert_reqs", "maybe", "required or optional or none"),
    ],
)
@pytest.mark.parametrize("where", ["table", "query"])
def test_bad_option_value_names_the_option_and_what_it_must_be(
    name: str, value: object, expected: str, where: str
) -> None:
    url, options = given(where, name, value)
    with pytest.raises(SettingTypeError) as info:
        parse(url, options)

    message = str(info.value)
    assert SECRET not in message
    assert f"setting {name!r}" in message
    assert expected in message
    assert repr(value) in message


def test_option_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(SettingTypeError, match="delivery_limit") as info:
        parse(f"amqp://u:{SECRET}@h/v?delivery_limit=many")

    assert SECRET not in str(info.value)


# -- the app, through the entry point ---------------------------------------------------


def test_app_resolves_amqp_urls_to_the_transport_without_connecting() -> None:
    port = free_port()
    app = petiole.Petiole(
        "t",
        broker=f"amqp://guest:{SECRET}@127.0.0.1:{port}/",
        config_file="/dev/null",
        broker_options={"connect_timeout_s": 0.5, "queue_type": "classic"},
    )
    try:
        transport = app.transport  # nobody listens on the port: this must not connect

        assert isinstance(transport, AmqpTransport)
        assert transport.options.queue_type == "classic"
        assert SECRET not in repr(transport)
        with pytest.raises(TransportError, match="cannot connect to RabbitMQ"):
            transport.size(unique_name())
    finally:
        app.close()


# -- start-up against a port nobody listens on ------------------------------------------


@pytest.mark.parametrize(
    "first_use",
    [
        pytest.param(lambda t: t.publish("q", b"x"), id="publish"),
        pytest.param(lambda t: t.size("q"), id="size"),
    ],
)
def test_refused_connection_fails_fast_naming_the_masked_url_and_the_error(
    first_use: Callable[[AmqpTransport], object],
) -> None:
    url = f"amqp://guest:{SECRET}@127.0.0.1:{free_port()}/prod"
    transport = create_transport(url, {"connect_timeout_s": 0.5})
    try:
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            first_use(transport)
        took_s = time.monotonic() - started
    finally:
        transport.close()

    message = str(info.value)
    assert took_s < HANG_GUARD_S
    assert SECRET not in message
    assert mask_url(url) in message
    assert mask_url(url).startswith("amqp://guest:***@127.0.0.1:")
    assert "cannot connect to RabbitMQ" in message
    assert "Connection refused" in message


# -- against a real node ----------------------------------------------------------------


def test_existing_classic_queue_used_as_quorum_is_a_config_error_with_the_remedy(
    rabbit_server: RabbitServer, channel: BlockingChannel
) -> None:
    queue = unique_name()
    channel.queue_declare(queue, durable=True)  # classic: no x-queue-type
    transport = create_transport(rabbit_server.url, {"queue_type": "quorum"})
    try:
        with pytest.raises(ConfigError) as info:
            transport.publish(queue, b"x")
    finally:
        transport.close()
        channel.queue_delete(queue)
        channel.queue_delete(topo.dead_queue(queue))

    message = str(info.value)
    assert repr(queue) in message
    assert "x-queue-type" in message
    assert "Delete the queue, or set the options to match it" in message


def test_same_queue_type_declares_and_publishes(rabbit_server: RabbitServer) -> None:
    queue = unique_name()
    transport = create_transport(rabbit_server.url, {"queue_type": "classic"})
    try:
        transport.publish(queue, b"x")
        assert transport.size(queue) == 1
    finally:
        transport.purge(queue)
        transport.close()


@pytest.mark.parametrize(("queue_type", "priorities"), [("classic", True), ("quorum", False)])
@pytest.mark.parametrize("delay_levels", [1, 5, 22])
def test_capabilities_follow_the_queue_type_and_delay_levels(
    queue_type: str, priorities: bool, delay_levels: int
) -> None:
    transport = create_transport(
        f"amqp://127.0.0.1:{free_port()}/",
        {"queue_type": queue_type, "delay_levels": delay_levels},
    )
    try:
        caps = transport.capabilities

        assert caps.priorities is priorities
        assert caps.leases_expire is False
        assert caps.counts_leased is False
        assert caps.max_delay_s == 2**delay_levels - 1
    finally:
        transport.close()
