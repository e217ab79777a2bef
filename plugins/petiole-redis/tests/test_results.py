"""Redis-specific result backend behaviour beyond the conformance suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from petiole_redis._pubsub import Watch
from petiole_redis.results import RedisBackend
from petiole_redis.testing import RedisServer

from petiole import states
from petiole.backend import ResultRecord
from petiole.errors import ResultBackendError
from petiole.testing import unique_name, wait_until
from petiole.testing.in_thread import InThread


@pytest.fixture
def backend(redis_server: RedisServer) -> Iterator[RedisBackend]:
    backend = RedisBackend(redis_server.url, {})
    yield backend
    backend.close()


def done(task_id: str, payload: bytes = b"1") -> ResultRecord:
    return ResultRecord(task_id, states.SUCCESS, payload, date_done=time.time())


def test_wait_is_woken_by_the_store_within_milliseconds(
    redis_server: RedisServer, backend: RedisBackend
) -> None:
    task_id = unique_name("task")
    writer = RedisBackend(redis_server.url, {})
    stored_at: list[float] = []

    def store() -> None:
        writer.store(done(task_id), ttl_s=60)
        stored_at.append(time.monotonic())

    timer = threading.Timer(0.2, store)
    timer.start()
    try:
        got = backend.wait([task_id], timeout_s=10)
        woke_at = time.monotonic()
    finally:
        timer.join()
        writer.close()
        backend.forget([task_id])

    assert list(got) == [task_id]
    assert woke_at - stored_at[0] < 0.1


def test_two_waiters_on_one_id_both_wake(backend: RedisBackend) -> None:
    task_id = unique_name("task")
    waiters = [InThread(lambda: backend.wait([task_id], timeout_s=10)) for _ in range(2)]
    threading.Timer(0.2, lambda: backend.store(done(task_id), ttl_s=60)).start()
    try:
        assert [list(w.result(timeout_s=15)) for w in waiters] == [[task_id], [task_id]]
    finally:
        backend.forget([task_id])


def test_close_wakes_a_waiter_with_what_it_found(redis_server: RedisServer) -> None:
    backend = RedisBackend(redis_server.url, {})
    threading.Timer(0.2, backend.close).start()
    start = time.monotonic()

    assert backend.wait([unique_name("task")], timeout_s=30) == {}
    assert time.monotonic() - start < 5


def test_foreign_value_under_a_result_key_is_a_clear_error(
    redis_server: RedisServer, backend: RedisBackend
) -> None:
    task_id = unique_name("task")
    with redis_server.client() as client:
        client.set(backend.keys.result(task_id), b"not ours")
    try:
        with pytest.raises(ResultBackendError, match="not a petiole-redis record"):
            backend.get(task_id)
    finally:
        backend.forget([task_id])


def test_record_is_stored_with_a_millisecond_ttl(
    redis_server: RedisServer, backend: RedisBackend
) -> None:
    task_id = unique_name("task")
    backend.store(done(task_id), ttl_s=100)
    with redis_server.client() as client:
        assert 99_000 < client.pttl(backend.keys.result(task_id)) <= 100_000
    backend.forget([task_id])


def test_after_the_listener_reconnects_waiters_re_read_only_once_subscribed(
    redis_server: RedisServer, backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiter told to re-read before the server has the new subscription could
    miss a record stored in between: not in its read, and never pushed."""
    events: list[object] = []
    connector = backend._listener._connector
    new_connection = connector.new_connection

    class Recording:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            reply = self.inner.read_response(*args, **kwargs)
            events.append(reply)
            return reply

    resync = Watch.resync

    def recording_resync(watch: Watch) -> None:
        events.append("resync")
        resync(watch)

    monkeypatch.setattr(connector, "new_connection", lambda: Recording(new_connection()))
    monkeypatch.setattr(Watch, "resync", recording_resync)
    ids = [unique_name("task") for _ in range(2)]
    waiter = InThread(lambda: backend.wait(ids, timeout_s=30))
    admin = redis.Redis.from_url(redis_server.url)
    channel = backend.keys.done_channel(ids[0])
    try:
        assert wait_until(lambda: admin.pubsub_numsub(channel)[0][1] == 1, timeout_s=10)
        events.clear()
        admin.client_kill_filter(_type="pubsub")  # the listener's connection drops
        assert wait_until(lambda: "resync" in events, timeout_s=10)
        before_resync = events[: events.index("resync")]
        assert any(isinstance(reply, list) and reply[:1] == [b"pong"] for reply in before_resync), (
            before_resync
        )
        for task_id in ids:
            backend.store(done(task_id), ttl_s=60)
        found = waiter.result(timeout_s=30)
    finally:
        admin.close()
        backend.forget(ids)
    assert sorted(found) == sorted(ids)
