"""MongoDB-specific result backend behaviour beyond the conformance suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from petiole_mongo.results import MongoBackend
from petiole_mongo.testing import MongoServer

from petiole import states
from petiole.backend import ResultRecord
from petiole.errors import ResultBackendError
from petiole.testing import unique_name

PAST = datetime.now(timezone.utc) - timedelta(hours=1)


@pytest.fixture
def backend(mongo_server: MongoServer) -> Iterator[MongoBackend]:
    backend = MongoBackend(mongo_server.url, {})
    yield backend
    backend.close()


def done(task_id: str, payload: bytes = b"42") -> ResultRecord:
    return ResultRecord(task_id, states.SUCCESS, payload=payload, date_done=time.time())


def test_ttl_indexes_are_created_on_first_use(mongo_server: MongoServer) -> None:
    prefix = unique_name("idx").replace("-", "_")
    backend = MongoBackend(mongo_server.url, {"collection_prefix": prefix})
    try:
        backend.get(unique_name("task"))
        with mongo_server.client() as client:
            db = client.get_database()
            indexes = [db[f"{prefix}_{name}"].index_information() for name in ("results", "keys")]
    finally:
        backend.close()

    for info in indexes:
        assert info["ttl"]["key"] == [("expires_at", 1)]
        assert info["ttl"]["expireAfterSeconds"] == 0


def test_record_keeps_its_expiry_as_a_date_and_its_payload_as_binary(
    mongo_server: MongoServer, backend: MongoBackend
) -> None:
    task_id = unique_name("task")
    backend.store(done(task_id, b"\x00\xff"), ttl_s=100)
    with mongo_server.client() as client:
        document = client.get_database()[backend.results_name].find_one({"_id": task_id})
    backend.forget([task_id])

    assert document is not None
    assert document["payload"] == b"\x00\xff"
    expires_in = document["expires_at"].replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)
    assert timedelta(seconds=98) < expires_in <= timedelta(seconds=100)


def test_expired_entries_are_gone_before_the_ttl_sweeper_deletes_them(
    mongo_server: MongoServer, backend: MongoBackend
) -> None:
    task_id, key = unique_name("task"), unique_name("key")
    with mongo_server.client() as client:
        db = client.get_database()
        db[backend.results_name].insert_one(
            {
                "_id": task_id,
                "state": states.SUCCESS,
                "ready": True,
                "payload": b"old",
                "content_type": "application/json",
                "traceback": None,
                "date_done": 1.0,
                "meta": "{}",
                "expires_at": PAST,
            }
        )
        db[backend.keys_name].insert_many(
            [
                {"_id": f"set:{key}", "members": ["a", "b"], "expires_at": PAST},
                {"_id": f"counter:{key}", "value": 10, "expires_at": PAST},
                {"_id": f"claim:{key}", "owner": "old", "expires_at": PAST},
            ]
        )
    try:
        assert backend.get(task_id) is None
        assert backend.set_add(key, "c", ttl_s=None) == 1
        assert backend.incr(key, ttl_s=None) == 1
        assert backend.claim(key, "new", ttl_s=None) == "new"
    finally:
        backend.forget([task_id])
        backend.delete_keys([key])


def test_foreign_document_under_a_task_id_is_a_clear_error(
    mongo_server: MongoServer, backend: MongoBackend
) -> None:
    task_id = unique_name("task")
    with mongo_server.client() as client:
        client.get_database()[backend.results_name].insert_one({"_id": task_id, "x": 1})
    try:
        with pytest.raises(ResultBackendError, match="not a petiole-mongo record"):
            backend.get(task_id)
    finally:
        backend.forget([task_id])


def test_close_wakes_a_waiter_with_what_it_found(mongo_server: MongoServer) -> None:
    backend = MongoBackend(mongo_server.url, {})
    threading.Timer(0.2, backend.close).start()
    start = time.monotonic()

    assert backend.wait([unique_name("task")], timeout_s=30) == {}
    assert time.monotonic() - start < 5


def test_store_on_another_connection_wakes_a_waiter_by_change_stream(
    mongo_server: MongoServer, backend: MongoBackend
) -> None:
    task_id = unique_name("task")
    backend.wait([task_id], timeout_s=0.3)  # opens the stream
    if not backend._feed.live:
        pytest.skip("this server offers no change streams (a standalone mongod)")
    peer = MongoBackend(mongo_server.url, {})
    stored_at: list[float] = []

    def store() -> None:
        peer.store(done(task_id), ttl_s=60)
        stored_at.append(time.monotonic())

    timer = threading.Timer(1.5, store)
    timer.start()
    try:
        got = backend.wait([task_id], timeout_s=10)
        returned_at = time.monotonic()
    finally:
        timer.join()
        peer.forget([task_id])
        peer.close()

    assert list(got) == [task_id]
    assert returned_at - stored_at[0] < 0.5
