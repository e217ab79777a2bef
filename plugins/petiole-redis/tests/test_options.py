"""URL forms, options, and the errors a user can cause at start-up."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from petiole_redis._connection import address_of
from petiole_redis._options import parse_url
from petiole_redis.results import create_backend
from petiole_redis.testing import RedisServer
from petiole_redis.transport import create_transport

from petiole.errors import (
    ConfigError,
    ResultBackendError,
    SettingTypeError,
    TransportError,
    UnknownSettingError,
)
from petiole.testing import unique_name
from petiole.testing.servers import free_port


def test_connection_refused_at_startup_names_the_url_with_password_masked() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"

    with pytest.raises(TransportError) as info:
        create_transport(url, {"startup_timeout_s": 0})

    message = str(info.value)
    assert "hunter2" not in message
    assert f"redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in message
    assert "Connection refused" in message


def test_a_host_that_does_not_resolve_is_named_as_such() -> None:
    """Not 'is redis-server running there?': there is no there (RFC 2606's .invalid)."""
    with pytest.raises(TransportError) as info:
        create_transport("redis://no-such-host.invalid:6379/0", {"startup_timeout_s": 0})
    message = str(info.value)
    assert "the host name 'no-such-host.invalid' does not resolve" in message
    assert "is redis-server running there" not in message


def test_result_backend_connection_refused_raises_result_backend_error() -> None:
    with pytest.raises(ResultBackendError, match="cannot connect to the redis result backend"):
        create_backend(f"redis://127.0.0.1:{free_port()}/0", {"startup_timeout_s": "0"})


def test_unknown_option_is_rejected_naming_the_valid_ones(redis_server: RedisServer) -> None:
    with pytest.raises(UnknownSettingError) as info:
        create_transport(redis_server.url, {"key_prefx": "x"})

    assert "key_prefx" in str(info.value)
    assert "did you mean 'key_prefix'" in str(info.value)
    assert "reconnect_timeout_s" in str(info.value)


def test_unknown_url_query_parameter_is_rejected(redis_server: RedisServer) -> None:
    with pytest.raises(UnknownSettingError, match="lease"):
        create_backend(f"{redis_server.url}?lease=3", {})


def test_bad_option_value_names_the_expected_type(redis_server: RedisServer) -> None:
    with pytest.raises(SettingTypeError, match="socket_timeout_s"):
        create_transport(redis_server.url, {"socket_timeout_s": "soon"})


def test_url_of_another_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a redis://"):
        create_transport("amqp://127.0.0.1/", {})


def test_url_query_overrides_options_table(redis_server: RedisServer) -> None:
    transport = create_transport(f"{redis_server.url}?key_prefix=fromurl", {"key_prefix": "table"})
    queue = unique_name()
    try:
        transport.publish(queue, b"x")
        with redis_server.client() as client:
            assert client.exists(f"fromurl:stream0:{{{queue}}}") == 1
    finally:
        transport.purge(queue)
        transport.close()


def test_key_prefix_keeps_two_apps_on_one_server_apart(redis_server: RedisServer) -> None:
    first = create_transport(redis_server.url, {"key_prefix": "app1"})
    second = create_transport(redis_server.url, {"key_prefix": "app2"})
    try:
        first.publish("shared-name", b"for app1")
        assert second.reserve(["shared-name"], max_messages=1, wait_s=0, lease_s=10) == []
        [delivery] = first.reserve(["shared-name"], max_messages=1, wait_s=0, lease_s=10)
        assert delivery.payload == b"for app1"
        first.ack(delivery)
    finally:
        first.close()
        second.close()


def test_unix_socket_url_serves_transport_and_backend(redis_server: RedisServer) -> None:
    transport = create_transport(redis_server.unix_url, {})
    backend = create_backend(redis_server.unix_url, {})
    queue = unique_name()
    try:
        transport.publish(queue, b"over a unix socket")
        [delivery] = transport.reserve([queue], max_messages=1, wait_s=1, lease_s=10)
        assert delivery.payload == b"over a unix socket"
        transport.ack(delivery)
        assert backend.incr(unique_name(), 2, ttl_s=5) == 2
    finally:
        transport.close()
        backend.close()


def test_wrong_password_fails_at_once_without_retrying(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = RedisServer(tmp_path_factory.mktemp("auth"), password="right").start()
    try:
        wrong = server.url.replace(":right@", ":wrong@")
        with pytest.raises(TransportError) as info:
            create_transport(wrong, {"startup_timeout_s": 30})
        assert ":wrong@" not in str(info.value)
        assert ":***@" in str(info.value)
        transport = create_transport(server.url, {})
        transport.close()
    finally:
        server.stop()


@pytest.mark.parametrize("form", ["tcp", "unix"])
def test_the_database_number_of_the_url_is_the_one_used(
    redis_server: RedisServer, form: str
) -> None:
    """``redis://host:port/3`` and ``unix:///path?db=3``: the keys land in database 3."""
    url = (
        redis_server.url.rsplit("/", 1)[0] + "/3"
        if form == "tcp"
        else redis_server.unix_url.replace("?db=0", "?db=3")
    )
    transport = create_transport(url, {})
    queue = unique_name()
    try:
        transport.publish(queue, b"in database 3")
        with redis_server.client() as db0, redis_server.client(db=3) as db3:
            assert not db0.keys(f"*{queue}*")
            assert db3.keys(f"*{queue}*")
        [delivery] = transport.reserve([queue], max_messages=1, wait_s=1, lease_s=10)
        assert delivery.payload == b"in database 3"
        transport.ack(delivery)
    finally:
        transport.close()


def test_a_percent_encoded_user_and_password_are_decoded(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Characters a URL cannot hold as they are (``@ : / % #``) are written encoded;
    the server gets them decoded, with the named user (``AUTH user password``)."""
    password = "p@ss:w/rd%#1"
    server = RedisServer(tmp_path_factory.mktemp("auth"), password="admin-pass").start()
    try:
        with server.client() as admin:
            admin.acl_setuser(
                "odd@user", enabled=True, passwords=[f"+{password}"], commands=["+@all"], keys=["*"]
            )
        auth = f"{quote('odd@user', safe='')}:{quote(password, safe='')}"
        url = f"redis://{auth}@127.0.0.1:{server.port}/0"
        backend = create_backend(url, {})
        try:
            assert backend.incr(unique_name(), 5, ttl_s=5) == 5
        finally:
            backend.close()
        with server.client() as admin:
            entries = admin.acl_log()
        assert not entries, f"the server logged refused logins: {entries}"
    finally:
        server.stop()


def test_reply_spin_us_is_the_spin_of_plain_and_unix_connections_not_tls() -> None:
    """How long a read spins for its reply (the README's ``reply_spin_us``): 40 µs by
    default, as set, and none over TLS (whose reads cannot skip sleeping)."""

    def spin_s(url: str, options: dict[str, object] | None = None) -> float:
        return address_of(parse_url(url, options or {}, component="test")).reply_spin_s

    assert spin_s("redis://127.0.0.1/0") == pytest.approx(40e-6)
    assert spin_s("redis://127.0.0.1/0?reply_spin_us=0") == 0.0
    assert spin_s("unix:///tmp/redis.sock", {"reply_spin_us": 100}) == pytest.approx(100e-6)
    assert spin_s("rediss://127.0.0.1/0?reply_spin_us=100") == 0.0


@pytest.mark.parametrize(("value", "expected"), [(-1, ">= 0"), (1001, "from 0 to 1000")])
def test_a_reply_spin_out_of_range_is_refused_saying_the_range(value: int, expected: str) -> None:
    with pytest.raises(SettingTypeError, match=rf"'reply_spin_us'.*{expected}"):
        parse_url(f"redis://127.0.0.1/0?reply_spin_us={value}", {}, component="test")
