"""memcached-specific behaviour of the result backend, beyond the conformance suite."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from petiole_memcached.results import HEADROOM_BYTES, MemcachedBackend
from petiole_memcached.testing import MemcachedServer
from pymemcache.client.base import Client

from petiole import Petiole, states
from petiole.backend import ResultRecord
from petiole.errors import ResultBackendError, ResultTooLarge
from petiole.testing import unique_name
from petiole.testing.servers import free_port


@pytest.fixture
def backend(memcached_server: MemcachedServer) -> Iterator[MemcachedBackend]:
    backend = MemcachedBackend(memcached_server.url, {})
    yield backend
    backend.close()


def done(task_id: str, payload: bytes = b"1", traceback: str | None = None) -> ResultRecord:
    return ResultRecord(
        task_id, states.SUCCESS, payload, traceback=traceback, date_done=time.time()
    )


def raw(server: MemcachedServer) -> Client:
    return Client(("127.0.0.1", server.port), default_noreply=False)


def meta_ttl(server: MemcachedServer, key: str) -> int:
    """The remaining ttl memcached reports for ``key`` (-1: none), via the meta protocol."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(f"mg {key} t\r\n".encode())
        reply = sock.recv(256).decode()
    assert reply.startswith("HD t"), reply
    return int(reply.split()[1][1:])


def gets_served(server: MemcachedServer) -> int:
    return int(raw(server).stats()[b"cmd_get"])


# -- records -----------------------------------------------------------------------------


def test_record_is_stored_with_its_ttl_rounded_up_plus_one_second(
    memcached_server: MemcachedServer, backend: MemcachedBackend
) -> None:
    task_id = unique_name("task")
    backend.store(done(task_id), ttl_s=99.2)
    try:
        assert 100 <= meta_ttl(memcached_server, backend.keys.result(task_id)) <= 101
        backend.store(done(task_id), ttl_s=None)
        assert meta_ttl(memcached_server, backend.keys.result(task_id)) == -1
    finally:
        backend.forget([task_id])


@pytest.mark.parametrize("task_id", ["x" * 400, "with spaces and\ttabs", "naïve-✓", "a\nb"])
def test_task_ids_memcached_cannot_take_as_keys_round_trip(
    backend: MemcachedBackend, task_id: str
) -> None:
    backend.store(done(task_id, b"ok"), ttl_s=60)
    try:
        assert backend.get_many([task_id, "other"])[task_id].payload == b"ok"
    finally:
        backend.forget([task_id])
    assert backend.get(task_id) is None


def test_result_over_the_item_size_names_its_size_and_the_limit(
    backend: MemcachedBackend,
) -> None:
    task_id = unique_name("task")
    limit = 1024 * 1024 - HEADROOM_BYTES
    assert backend.capabilities.max_result_bytes == limit

    with pytest.raises(ResultTooLarge) as info:
        backend.store(done(task_id, b"x" * (limit + 1)), ttl_s=60)

    assert f"{limit + 1} bytes" in str(info.value)
    assert f"limit of {limit} bytes" in str(info.value)
    assert "max_item_bytes" in str(info.value)


def test_result_at_the_limit_with_a_huge_traceback_fails_naming_the_item_size(
    backend: MemcachedBackend,
) -> None:
    task_id = unique_name("task")
    record = done(task_id, b"x" * 1000, traceback="t" * (1024 * 1024))

    with pytest.raises(
        ResultTooLarge, match=r"exceeds the memcached item limit .*traceback and meta"
    ):
        backend.store(record, ttl_s=60)


def test_larger_items_need_both_the_server_option_and_ours(tmp_path: Path) -> None:
    server = MemcachedServer(tmp_path, max_item="4m").start()
    task_id = unique_name("task")
    payload = bytes(range(256)) * 8192  # 2 MiB
    big = MemcachedBackend(server.url, {"max_item_bytes": 4 * 1024 * 1024})
    try:
        big.store(done(task_id, payload), ttl_s=60)
        got = big.get(task_id)
        assert got is not None
        assert got.payload == payload
    finally:
        big.close()
        server.stop()


def test_server_refusing_an_item_under_max_item_bytes_says_to_lower_the_option(
    memcached_server: MemcachedServer,
) -> None:
    backend = MemcachedBackend(memcached_server.url, {"max_item_bytes": 4 * 1024 * 1024})
    try:
        with pytest.raises(ResultBackendError, match=r"too large.*-I option.*lower that option"):
            backend.store(done(unique_name("task"), b"x" * (2 * 1024 * 1024)), ttl_s=60)
        # The connection that got the refusal was dropped; the next call works.
        backend.store(done(unique_name("task")), ttl_s=1)
    finally:
        backend.close()


def test_foreign_value_under_a_result_key_is_a_clear_error(
    memcached_server: MemcachedServer, backend: MemcachedBackend
) -> None:
    task_id = unique_name("task")
    raw(memcached_server).set(backend.keys.result(task_id), b"not ours")
    try:
        with pytest.raises(ResultBackendError, match="not a petiole-memcached record"):
            backend.get(task_id)
    finally:
        backend.forget([task_id])


def test_key_prefix_separates_two_apps_on_one_server(memcached_server: MemcachedServer) -> None:
    task_id = unique_name("task")
    billing = MemcachedBackend(memcached_server.url, {"key_prefix": "billing"})
    reports = MemcachedBackend(f"{memcached_server.url}?key_prefix=reports", {})
    try:
        billing.store(done(task_id), ttl_s=60)
        assert reports.get(task_id) is None
        assert billing.get(task_id) is not None
        assert billing.keys.result(task_id) == f"billing:r:{task_id}"
    finally:
        billing.forget([task_id])
        billing.close()
        reports.close()


# -- wait ------------------------------------------------------------------------------------


def test_wait_polls_with_a_capped_backoff(tmp_path: Path) -> None:
    server = MemcachedServer(tmp_path).start()
    backend = MemcachedBackend(server.url, {"wait_poll_max_s": 0.2})
    try:
        before = gets_served(server)
        assert backend.wait([unique_name("task")], timeout_s=1.5) == {}
        polls = gets_served(server) - before
    finally:
        backend.close()
        server.stop()
    # 5, 10, 20, 40, 80, 160 ms, then every 200 ms: about 13 polls in 1.5 s, not hundreds.
    assert 8 <= polls <= 16, polls


def test_close_wakes_a_waiter_with_what_it_found(memcached_server: MemcachedServer) -> None:
    backend = MemcachedBackend(memcached_server.url, {"wait_poll_max_s": 5})
    threading.Timer(0.3, backend.close).start()
    start = time.monotonic()

    assert backend.wait([unique_name("task")], timeout_s=30) == {}
    assert time.monotonic() - start < 2


def test_calls_after_close_raise_naming_the_backend(memcached_server: MemcachedServer) -> None:
    backend = MemcachedBackend(memcached_server.url, {})
    backend.close()

    with pytest.raises(ResultBackendError, match=r"memcached result backend .* is closed"):
        backend.get("x")


# -- counters and claims -----------------------------------------------------------------------


def test_counter_goes_below_zero(backend: MemcachedBackend) -> None:
    key = unique_name("key")
    try:
        assert backend.incr(key, -5, ttl_s=60) == -5
        assert backend.incr(key, 7, ttl_s=60) == 2
    finally:
        backend.delete_keys([key])


def test_counter_ttl_is_renewed_by_each_increment(
    memcached_server: MemcachedServer, backend: MemcachedBackend
) -> None:
    key = unique_name("key")
    try:
        backend.incr(key, ttl_s=10)
        backend.incr(key, ttl_s=500)
        assert 500 <= meta_ttl(memcached_server, backend.keys.counter(key)) <= 501
    finally:
        backend.delete_keys([key])


def test_claim_keeps_any_owner_name(backend: MemcachedBackend) -> None:
    key = "chord:" + "x" * 300  # longer than a memcached key: hashed
    owner = "worker naïve ✓ " + "y" * 100
    try:
        assert backend.claim(key, owner, ttl_s=60) == owner
        assert backend.claim(key, "someone else", ttl_s=60) == owner
    finally:
        backend.delete_keys([key])


# -- servers -------------------------------------------------------------------------------------


def test_unreachable_server_at_startup_names_the_url() -> None:
    port = free_port()
    with pytest.raises(ResultBackendError) as info:
        MemcachedBackend(f"memcached://127.0.0.1:{port}", {"startup_timeout_s": 0})

    message = str(info.value)
    assert f"cannot connect to the memcached result backend memcached://127.0.0.1:{port}" in message
    assert "Connection refused" in message


def test_restarted_server_is_used_again_without_an_error(
    own_memcached_server: MemcachedServer,
) -> None:
    backend = MemcachedBackend(own_memcached_server.url, {})
    task_id = unique_name("task")
    try:
        # Several pooled connections, all made stale by the restart.
        run_in_threads(4, lambda: backend.store(done(task_id), ttl_s=60))
        own_memcached_server.restart()

        assert backend.get(task_id) is None  # memcached keeps nothing across a restart
        backend.store(done(task_id), ttl_s=60)
        assert backend.get(task_id) is not None
    finally:
        backend.close()


def test_dead_server_fails_its_keys_and_the_others_keep_working(tmp_path: Path) -> None:
    first = MemcachedServer(tmp_path).start()
    second = MemcachedServer(tmp_path).start()
    url = f"memcached://{first.address},{second.address}"
    backend = MemcachedBackend(url, {"connect_timeout_s": 1})
    try:
        ids = [unique_name("task") for _ in range(40)]
        for task_id in ids:
            backend.store(done(task_id), ttl_s=60)
        assert set(backend.get_many(ids)) == set(ids)
        on_first = [t for t in ids if backend_server(backend, t) == first.address]
        on_second = [t for t in ids if t not in on_first]
        assert on_first, "the hash should spread 40 keys over both servers"
        assert on_second, "the hash should spread 40 keys over both servers"

        first.kill()
        with pytest.raises(ResultBackendError) as info:
            backend.get(on_first[0])
        assert url in str(info.value)
        assert f"on server {first.address}" in str(info.value)
        assert set(backend.get_many(on_second)) == set(on_second)
        # Its keys are not moved to the live server: they fail until it is back.
        with pytest.raises(ResultBackendError):
            backend.store(done(on_first[0]), ttl_s=60)

        first.start()
        assert backend.get_many(ids).keys() == set(on_second)  # the restarted one is empty
    finally:
        backend.close()
        first.stop()
        second.stop()


def test_keys_land_where_pymemcache_hash_client_puts_them(
    memcached_server: MemcachedServer, second_memcached_server: MemcachedServer
) -> None:
    from pymemcache.client.hash import HashClient

    servers = [("127.0.0.1", memcached_server.port), ("127.0.0.1", second_memcached_server.port)]
    url = f"memcached://{memcached_server.address},{second_memcached_server.address}"
    backend = MemcachedBackend(url, {})
    other = HashClient(servers, default_noreply=False)
    ids = [unique_name("task") for _ in range(20)]
    try:
        for task_id in ids:
            backend.store(done(task_id, task_id.encode()), ttl_s=60)
        found = other.get_many([backend.keys.result(t) for t in ids])
        assert len(found) == len(ids)
    finally:
        backend.forget(ids)
        backend.close()
        other.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_uses_its_own_connections(backend: MemcachedBackend) -> None:
    ids = [unique_name("task") for _ in range(50)]
    for task_id in ids:
        backend.store(done(task_id, task_id.encode()), ttl_s=60)
    try:
        pid = os.fork()
        if pid == 0:  # the child: read every record while the parent reads too
            ok = all(backend.get(t).payload == t.encode() for t in ids * 4)  # type: ignore[union-attr]
            os._exit(0 if ok else 1)
        parent_ok = all(backend.get(t).payload == t.encode() for t in ids * 4)  # type: ignore[union-attr]
        _, status = os.waitpid(pid, 0)
    finally:
        backend.forget(ids)
    assert parent_ok
    assert os.waitstatus_to_exitcode(status) == 0


def test_entry_point_serves_memcached_urls(memcached_server: MemcachedServer) -> None:
    app = Petiole(
        "entry", broker="memory://entry", backend=memcached_server.url, config_file="/dev/null"
    )
    try:
        assert isinstance(app.backend, MemcachedBackend)
    finally:
        app.close()


def backend_server(backend: MemcachedBackend, task_id: str) -> str:
    servers = backend._servers
    return servers._names[servers._node(backend.keys.result(task_id))]


def run_in_threads(count: int, work: Callable[[], object]) -> None:
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait()
        work()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_counter_survives_memcached_scanning_past_its_value(
    own_memcached_server: MemcachedServer,
) -> None:
    """memcached before 1.6.22 checks a value of 2**63 or more for a minus sign with
    ``strchr``, which reads past the value into whatever the item's memory held
    before; a freed item with a ``-`` in its key there made a fresh counter
    "non-numeric". A failed ``cas`` frees such an item; counters stay below 2**63."""
    backend = MemcachedBackend(own_memcached_server.url, {})
    try:
        dashed = "petiole:lease:petiole-test-shared-" + "0" * 16
        assert not backend._servers.cas(dashed, b"owner-a", b"9", 60, "fail a cas")
        assert backend.incr("key-" + "0" * 16, -5, ttl_s=60) == -5
    finally:
        backend.close()
