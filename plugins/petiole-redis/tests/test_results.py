"""Redis-specific result backend behaviour beyond the conformance suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from petiole_redis.results import RedisBackend
from petiole_redis.testing import RedisServer

from petiole import states
from petiole.backend import ResultRecord
from petiole.errors import ResultBackendError
from petiole.testing import unique_name


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


def test_wait_for_a_thousand_ids_collects_every_result(backend: RedisBackend) -> None:
    ids = [unique_name("task") for _ in range(1000)]
    for task_id in ids[:500]:
        backend.store(done(task_id), ttl_s=60)

    def store_rest() -> None:
        for task_id in ids[500:]:
            backend.store(done(task_id), ttl_s=60)

    storer = threading.Timer(0.1, store_rest)
    storer.start()
    try:
        got = backend.wait(ids, timeout_s=30)
    finally:
        storer.join()
        backend.forget(ids)

    assert set(got) == set(ids)


def test_two_waiters_on_one_id_both_wake(backend: RedisBackend) -> None:
    task_id = unique_name("task")
    results: list[dict[str, ResultRecord]] = []
    waiters = [
        threading.Thread(target=lambda: results.append(backend.wait([task_id], timeout_s=10)))
        for _ in range(2)
    ]
    for waiter in waiters:
        waiter.start()
    threading.Timer(0.2, lambda: backend.store(done(task_id), ttl_s=60)).start()
    for waiter in waiters:
        waiter.join(15)

    assert [list(r) for r in results] == [[task_id], [task_id]]
    backend.forget([task_id])


def test_close_wakes_a_waiter_with_what_it_found(redis_server: RedisServer) -> None:
    backend = RedisBackend(redis_server.url, {})
    threading.Timer(0.2, backend.close).start()
    start = time.monotonic()

    assert backend.wait([unique_name("task")], timeout_s=30) == {}
    assert time.monotonic() - start < 5


def test_meta_that_is_not_json_safe_is_refused(backend: RedisBackend) -> None:
    record = ResultRecord(unique_name("task"), states.SUCCESS, meta={"when": object()})

    with pytest.raises(ResultBackendError, match="not JSON-safe"):
        backend.store(record, ttl_s=None)


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
