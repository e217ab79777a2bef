"""``rediss://``: the transport and the result backend over TLS, against a real
redis-server that speaks only TLS (``--port 0``: no test can pass over plain TCP).

Its certificates come from a throwaway CA made with ``openssl`` (see
:class:`petiole_redis.testing.RedisServer`), which no system trusts: a client
must be given it (``ssl_ca_certs``), or told not to check (``ssl_cert_reqs=none``).
One server asks for a client certificate but lets clients in without one
(``--tls-auth-clients optional``); another requires one (mutual TLS).
"""

from __future__ import annotations

import os
import queue as queue_module
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from petiole_redis.results import create_backend
from petiole_redis.testing import RedisServer, ThrowawayPki
from petiole_redis.transport import create_transport

from petiole import Petiole, states
from petiole.backend import Coordination, ResultBackend, ResultRecord
from petiole.errors import PetioleError, ResultBackendError, TransportError
from petiole.testing import unique_name, wait_until
from petiole.testing.in_thread import InThread, start_worker
from petiole.testing.servers import serve
from petiole.transport import Broadcast, Transport

# Room for retries: a refusal that is no outage must come without any (the outage
# policy logs its first retry as a WARNING "connection lost ... retrying").
STARTUP_TIMEOUT_S = 3.0
# A blocking read is woken by the server within milliseconds; the plugin's own
# slices are 5 s, so a wake-up within half of one was the server's, not a timeout's.
WOKEN_WITHIN_S = 2.5

Factory = Callable[[str, dict[str, Any]], Any]
# Each component's factory, error type, and name in its errors.
COMPONENTS: list[tuple[Factory, type[PetioleError], str]] = [
    (create_transport, TransportError, "redis broker"),
    (create_backend, ResultBackendError, "redis result backend"),
]
COMPONENT_IDS = ["transport", "backend"]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Client certificates optional: tests with and without one share it."""
    yield from serve(RedisServer(tmp_path_factory.mktemp("redis-tls"), tls=True))


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Mutual TLS: a client without a certificate its CA signed is turned away."""
    directory = tmp_path_factory.mktemp("redis-mtls")
    yield from serve(RedisServer(directory, tls=True, tls_auth_clients="yes"))


def round_trip(transport: Transport, payloads: list[bytes]) -> None:
    """Publish ``payloads`` to a fresh queue, reserve them all, ack them: the queue is empty."""
    queue = unique_name()
    for payload in payloads:
        transport.publish(queue, payload)
    deliveries = transport.reserve([queue], max_messages=len(payloads) + 1, wait_s=2, lease_s=30)
    assert [d.payload for d in deliveries] == payloads
    for delivery in deliveries:
        transport.ack(delivery)
    assert transport.size(queue) == 0


def store_and_read(backend: ResultBackend) -> None:
    """A result stored is read back and waited for; a counter counts."""
    task_id = unique_name("task")
    record = ResultRecord(task_id, states.SUCCESS, b'{"answer": 42}', date_done=time.time())
    backend.store(record, ttl_s=60)
    assert backend.get(task_id) == record
    assert backend.wait([task_id], timeout_s=5) == {task_id: record}
    key = unique_name("counter")
    assert isinstance(backend, Coordination)
    assert backend.incr(key, 2, ttl_s=60) == 2
    assert backend.incr(key, 3, ttl_s=60) == 5
    backend.forget([task_id])


def with_query(url: str, **params: str) -> str:
    return f"{url}?{urlencode(params)}"


def server_info(server: RedisServer, section: str, field: str) -> int:
    with server.client() as client:
        return int(client.info(section)[field])


def assert_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    """The outage policy logs its first retry: a refusal that is no outage has none."""
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert not retries, f"retried as if the server were down: {retries}"


# -- the server is TLS-only --------------------------------------------------------------


def test_the_server_speaks_only_tls(tls_server: RedisServer) -> None:
    """So every test here that passes went over TLS."""
    plain_url = tls_server.tls_url.replace("rediss://", "redis://", 1)

    with pytest.raises(TransportError, match="cannot connect") as info:
        create_transport(plain_url, {"startup_timeout_s": 0})

    assert plain_url in str(info.value)
    assert "if the server speaks TLS, use a rediss:// URL" in str(info.value)
    with tls_server.client() as client:
        assert client.config_get("port") == {"port": "0"}
        assert client.config_get("tls-port") == {"tls-port": str(tls_server.port)}


# -- trusting the server's CA -------------------------------------------------------------


@pytest.mark.parametrize("layout", ["streams", "lists"])
def test_transport_round_trip_with_the_ca(tls_server: RedisServer, layout: str) -> None:
    transport = create_transport(tls_server.tls_url, {**tls_server.tls_options(), "layout": layout})
    try:
        # 512 KiB spans many TLS records: replies are read whole however they arrive.
        round_trip(transport, [b"small", os.urandom(512 * 1024), b"last"])
    finally:
        transport.close()


def test_result_backend_round_trip_with_the_ca(tls_server: RedisServer) -> None:
    backend = create_backend(tls_server.tls_url, tls_server.tls_options())
    try:
        store_and_read(backend)
    finally:
        backend.close()


def test_options_given_as_url_query_parameters(tls_server: RedisServer) -> None:
    url = with_query(tls_server.tls_url, ssl_ca_certs=str(tls_server.ca_path))
    transport = create_transport(url, {})
    backend = create_backend(url, {})
    try:
        round_trip(transport, [b"options from the URL"])
        store_and_read(backend)
    finally:
        transport.close()
        backend.close()


def test_blocking_reserve_is_woken_by_a_publish(tls_server: RedisServer) -> None:
    """The reader blocks in the server on its TLS connection and is woken by the
    publish, not by a timeout."""
    transport = create_transport(tls_server.tls_url, tls_server.tls_options())
    queue = unique_name()
    try:
        transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30)  # connected
        blocked_before = server_info(tls_server, "clients", "blocked_clients")
        reserving = InThread(
            lambda: transport.reserve([queue], max_messages=1, wait_s=10, lease_s=30)
        )
        assert wait_until(
            lambda: server_info(tls_server, "clients", "blocked_clients") > blocked_before,
            timeout_s=5,
        )

        transport.publish(queue, b"wake up")
        published_at = time.monotonic()

        [delivery] = reserving.result()
        assert delivery.payload == b"wake up"
        assert reserving.finished_at - published_at < WOKEN_WITHIN_S
        transport.ack(delivery)
    finally:
        transport.close()


def test_result_wait_is_woken_by_a_store(tls_server: RedisServer) -> None:
    """The waiter's tracked read, and the server's push when the result is stored,
    both go over its TLS connection."""
    waiter = create_backend(tls_server.tls_url, tls_server.tls_options())
    writer = create_backend(tls_server.tls_url, tls_server.tls_options())
    task_id = unique_name("task")
    record = ResultRecord(task_id, states.SUCCESS, b"7", date_done=time.time())
    try:
        tracked_before = server_info(tls_server, "stats", "tracking_total_keys")
        waiting = InThread(lambda: waiter.wait([task_id], timeout_s=10))
        assert wait_until(
            lambda: server_info(tls_server, "stats", "tracking_total_keys") > tracked_before,
            timeout_s=5,
        )

        writer.store(record, ttl_s=60)
        stored_at = time.monotonic()

        assert waiting.result() == {task_id: record}
        assert waiting.finished_at - stored_at < WOKEN_WITHIN_S
    finally:
        writer.forget([task_id])
        writer.close()
        waiter.close()


def test_broadcast_reaches_a_subscriber(tls_server: RedisServer) -> None:
    """A subscription reads on a TLS connection of its own."""
    transport = create_transport(tls_server.tls_url, tls_server.tls_options())
    assert isinstance(transport, Broadcast)
    received: queue_module.Queue[tuple[str, bytes]] = queue_module.Queue()
    channel = unique_name("channel")
    subscription = transport.subscribe([channel], lambda c, p: received.put((c, p)))
    try:
        assert transport.broadcast(channel, b"to everyone") == 1
        assert received.get(timeout=5) == (channel, b"to everyone")
    finally:
        subscription.close()
        transport.close()


# -- not trusting it ----------------------------------------------------------------------


@pytest.mark.parametrize("cert_reqs", ["required", "optional"])
@pytest.mark.parametrize(("factory", "error_type", "component"), COMPONENTS, ids=COMPONENT_IDS)
def test_without_the_ca_the_certificate_is_refused_at_once(
    tls_server: RedisServer,
    factory: Factory,
    error_type: type[PetioleError],
    component: str,
    cert_reqs: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Checked against the system's CAs, which never signed it. ``optional`` checks
    a server's certificate too (as ``ssl.CERT_OPTIONAL`` does in a client). No
    retrying for ``startup_timeout_s``: a certificate is no outage."""
    with pytest.raises(error_type) as info:
        factory(
            tls_server.tls_url,
            {"ssl_cert_reqs": cert_reqs, "startup_timeout_s": STARTUP_TIMEOUT_S},
        )

    message = str(info.value)
    assert f"cannot connect to the {component} {tls_server.tls_url}" in message
    assert "ssl_ca_certs" in message
    assert_not_retried(caplog)


@pytest.mark.parametrize(("factory", "error_type", "component"), COMPONENTS, ids=COMPONENT_IDS)
def test_a_ca_that_did_not_sign_it_is_refused_too(
    tls_server: RedisServer,
    tmp_path: Path,
    factory: Factory,
    error_type: type[PetioleError],
    component: str,
) -> None:
    other_ca = ThrowawayPki.create(tmp_path).ca_path

    with pytest.raises(error_type) as info:
        factory(tls_server.tls_url, {"ssl_ca_certs": str(other_ca), "startup_timeout_s": 0})

    assert f"cannot connect to the {component} {tls_server.tls_url}" in str(info.value)
    assert "certificate" in str(info.value).lower()


def test_cert_reqs_none_connects_without_the_ca(tls_server: RedisServer) -> None:
    transport = create_transport(tls_server.tls_url, {"ssl_cert_reqs": "none"})
    backend = create_backend(with_query(tls_server.tls_url, ssl_cert_reqs="none"), {})
    try:
        round_trip(transport, [b"unverified"])
        store_and_read(backend)
    finally:
        transport.close()
        backend.close()


def test_host_name_is_checked_unless_turned_off(tls_server: RedisServer) -> None:
    """The certificate names 127.0.0.1 and localhost. ``127.1`` reaches the same
    server (the resolver expands it) under a name the certificate does not have."""
    options = {**tls_server.tls_options(), "startup_timeout_s": 0}
    by_name = create_transport(tls_server.tls_url.replace("127.0.0.1", "localhost"), options)
    by_name.close()
    other_name = tls_server.tls_url.replace("127.0.0.1", "127.1")

    with pytest.raises(TransportError) as info:
        create_transport(other_name, options)
    assert other_name in str(info.value)
    assert "certificate" in str(info.value).lower()
    assert "127.1" in str(info.value)

    unchecked = create_transport(other_name, {**options, "ssl_check_hostname": "false"})
    try:
        round_trip(unchecked, [b"name not checked"])
    finally:
        unchecked.close()


# -- mutual TLS ---------------------------------------------------------------------------


@pytest.mark.parametrize("certificate", ["none", "of another CA"])
@pytest.mark.parametrize(("factory", "error_type", "component"), COMPONENTS, ids=COMPONENT_IDS)
def test_mutual_tls_refuses_a_client_without_a_certificate_of_its_ca(
    mtls_server: RedisServer,
    tmp_path: Path,
    factory: Factory,
    error_type: type[PetioleError],
    component: str,
    certificate: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    options: dict[str, Any] = {
        **mtls_server.tls_options(),
        "startup_timeout_s": STARTUP_TIMEOUT_S,
    }
    if certificate != "none":
        stranger = ThrowawayPki.create(tmp_path)
        options["ssl_certfile"] = str(stranger.client_cert_path)
        options["ssl_keyfile"] = str(stranger.client_key_path)

    with pytest.raises(error_type) as info:
        factory(mtls_server.tls_url, options)

    message = str(info.value)
    assert f"cannot connect to the {component} {mtls_server.tls_url}" in message
    assert "client certificate" in message
    assert_not_retried(caplog)


def test_mutual_tls_lets_in_a_client_with_its_certificate(mtls_server: RedisServer) -> None:
    options = mtls_server.tls_options(client_cert=True)
    transport = create_transport(mtls_server.tls_url, options)
    backend = create_backend(with_query(mtls_server.tls_url, **options), {})
    try:
        round_trip(transport, [b"mutual"])
        store_and_read(backend)
    finally:
        transport.close()
        backend.close()


# -- end to end ---------------------------------------------------------------------------


def test_a_task_runs_end_to_end_over_tls(mtls_server: RedisServer) -> None:
    """An app and its worker with broker and backend on ``rediss://`` (mutual TLS:
    every connection they make must show the certificate, or it is turned away)."""
    options = mtls_server.tls_options(client_cert=True)
    app = Petiole(
        "tls",
        broker=mtls_server.tls_url,
        backend=mtls_server.tls_url,
        config_file=os.devnull,
        broker_options=options,
        backend_options=options,
        default_queue=unique_name("tls"),
    )

    @app.task(name="tls.add")
    def add(x: int, y: int) -> int:
        return x + y

    try:
        with start_worker(app):
            result = add.delay(2, 3)
            assert result.get(timeout=10) == 5
        assert result.state == states.SUCCESS
        assert app.transport.size(app.settings.default_queue) == 0
    finally:
        app.close()
