"""Redis-specific result backend behaviour beyond the conformance suite."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from petiole_redis import results
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


def test_a_store_is_one_command_whoever_waits(
    redis_server: RedisServer, backend: RedisBackend
) -> None:
    """The waiter is woken by the server's tracking of what it read: the store of
    a record its sender does not listen for announces nothing itself (no token,
    no channel)."""
    task_id = unique_name("task")
    waiter = InThread(lambda: backend.wait([task_id], timeout_s=30))
    writer = RedisBackend(redis_server.url, {})
    with redis_server.client() as admin:
        # Set up: tracking on, then (a round trip later) subscribed to its channel.
        assert wait_until(lambda: _subscribed_trackers(admin) >= 1, timeout_s=10)
        before = _calls(admin)
        writer.store(done(task_id), ttl_s=60)
        stored = _calls(admin)
        try:
            assert list(waiter.result(timeout_s=30)) == [task_id]
        finally:
            writer.close()
            backend.forget([task_id])
    ran = {name: n - before.get(name, 0) for name, n in stored.items()}
    ran = {name: n for name, n in ran.items() if n}
    del ran["info"]  # _calls' own INFO commandstats
    ran.pop("mget", None)  # the waiter, woken, may read before the second INFO
    assert ran == {"set": 1}


def test_a_waiter_whose_connection_is_cut_reads_again_and_finds_the_record(
    redis_server: RedisServer, backend: RedisBackend
) -> None:
    """The server forgets what a connection read when it closes: the waiter's new
    connection reads everything again, which also arms it again."""
    ids = [unique_name("task") for _ in range(2)]
    waiter = InThread(lambda: backend.wait(ids, timeout_s=30))
    with redis_server.client() as admin:
        try:
            assert wait_until(lambda: _tracked_clients(admin) >= 1, timeout_s=10)
            backend.store(done(ids[0]), ttl_s=60)
            admin.client_kill_filter(_type="normal", skipme=True)  # every client but admin
            backend.store(done(ids[1]), ttl_s=60)
            found = waiter.result(timeout_s=30)
        finally:
            backend.forget(ids)
    assert sorted(found) == sorted(ids)


def test_a_server_that_refuses_tracking_makes_waits_poll_and_says_so_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    with acl_user(redis_server, channels=["*"], commands=["+@all", "-client"]) as url:
        backend = RedisBackend(url, {})
        ids = [unique_name("task") for _ in range(3)]
        try:
            with caplog.at_level("WARNING", logger="petiole_redis"):
                for task_id in ids:
                    threading.Timer(0.1, lambda t=task_id: backend.store(done(t), ttl_s=60)).start()
                    assert list(backend.wait([task_id], timeout_s=10)) == [task_id]
        finally:
            backend.forget(ids)
            backend.close()
    refusals = [r for r in caplog.records if "refuses RESP3 client tracking" in r.getMessage()]
    assert len(refusals) == 1, caplog.text
    assert "result waits poll" in refusals[0].getMessage()


def listening(backend: RedisBackend, task_id: str) -> str:
    """This thread's listening address for ``task_id``, after a first wait (which
    connects it)."""
    assert backend.listening_address(task_id) is None  # not before
    backend.wait([unique_name("nothing")], timeout_s=0.01)
    address = backend.listening_address(task_id)
    assert address is not None
    assert address.startswith("petiole:reply:")
    return address


def addressed(task_id: str, reply_to: str, payload: bytes = b"1") -> ResultRecord:
    return ResultRecord(task_id, states.SUCCESS, payload, date_done=time.time(), reply_to=reply_to)


def test_the_wait_for_the_task_a_thread_addressed_takes_the_push_and_reads_nothing(
    own_redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store pushes the record with its SET; the sender's wait for that task
    counts on the push and reads nothing, not even before it blocks. On a server
    of its own: only this test's commands are counted. (The grace before a read is
    made longer than any test, so that only the push can answer.)"""
    monkeypatch.setattr(results, "_PUSH_GRACE_S", 60.0)
    backend = RedisBackend(own_redis_server.url, {})
    task_id = unique_name("task")
    address = listening(backend, task_id)
    writer = RedisBackend(own_redis_server.url, {})
    with own_redis_server.client() as admin:
        before = _calls(admin)
        try:
            writer.store(addressed(task_id, address, b"pushed"), ttl_s=60)
            got = backend.wait([task_id], timeout_s=30)
            after = _calls(admin)
        finally:
            writer.close()
            backend.close()
    assert got[task_id].payload == b"pushed"
    ran = {name: n - before.get(name, 0) for name, n in after.items()}
    assert (ran.get("mget", 0), ran["set"], ran["publish"]) == (0, 1, 1)


def test_the_addressed_tasks_wait_reads_the_store_once_its_push_is_late(
    own_redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record of the addressed task stored without a push (revoke()'s) is read
    once the grace has passed, and the key is tracked from then on."""
    monkeypatch.setattr(results, "_PUSH_GRACE_S", 0.0)
    backend = RedisBackend(own_redis_server.url, {})
    task_id = unique_name("task")
    listening(backend, task_id)
    writer = RedisBackend(own_redis_server.url, {})
    with own_redis_server.client() as admin:
        before = _calls(admin)

        def store_once_the_waiter_read() -> None:
            read = lambda: _calls(admin).get("mget", 0) > before.get("mget", 0)  # noqa: E731
            assert wait_until(read, timeout_s=30)
            writer.store(done(task_id, b"unpushed"), ttl_s=60)

        storer = InThread(store_once_the_waiter_read)
        try:
            got = backend.wait([task_id], timeout_s=30)
            storer.result(timeout_s=30)
        finally:
            writer.close()
            backend.close()
    assert got[task_id].payload == b"unpushed"


def test_only_the_first_send_after_each_wait_is_addressed(backend: RedisBackend) -> None:
    """A thread waiting for each task it sends gets each result pushed; a burst
    of sends gets one push at most, which it would not wait for at once."""
    address = listening(backend, "t")  # which took the address once
    assert backend.listening_address("t") is None
    for _ in range(3):
        backend.wait([unique_name("nothing")], timeout_s=0.01)
        taken = [backend.listening_address(f"t{i}") for i in range(100)]
        assert taken == [address] + [None] * 99


def test_a_push_not_waited_for_leaves_the_next_wait_correct(
    redis_server: RedisServer, backend: RedisBackend
) -> None:
    """A task whose result was pushed but not waited for (the thread waited for
    another first) does not answer for the other, and is read from the store."""
    first, second = unique_name("task"), unique_name("task")
    address = listening(backend, first)
    writer = RedisBackend(redis_server.url, {})
    try:
        writer.store(addressed(first, address, b"first"), ttl_s=60)
        storer = InThread(lambda: writer.store(done(second, b"second"), ttl_s=60))
        assert backend.wait([second], timeout_s=30)[second].payload == b"second"
        storer.result(timeout_s=30)
        assert backend.wait([first], timeout_s=30)[first].payload == b"first"
    finally:
        writer.close()
        backend.forget([first, second])


def test_a_sender_whose_connection_was_cut_listens_anew_and_still_finds_its_record(
    own_redis_server: RedisServer,
) -> None:
    """A record pushed to the old channel is lost with the connection; the wait
    reads everything on its new one, and the sender listens on a new channel."""
    backend = RedisBackend(own_redis_server.url, {})
    task_id = unique_name("task")
    old = listening(backend, task_id)
    with own_redis_server.client() as admin:
        for kind in ("pubsub", "normal"):  # however the server files it: every other client
            admin.client_kill_filter(_type=kind, skipme=True)
    try:
        backend.store(addressed(task_id, old), ttl_s=60)
        assert list(backend.wait([task_id], timeout_s=30)) == [task_id]
        new = backend.listening_address(task_id)
        assert new is not None
        assert new != old
    finally:
        backend.close()


def test_a_user_without_channels_stores_and_waits_and_says_so_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An ACL user allowed no channel (Redis 7's default for new users): no push,
    one warning each way; records are stored and waits read them once woken."""
    with acl_user(redis_server, reset_channels=True, commands=["+@all"]) as url:
        backend = RedisBackend(url, {})
        ids = [unique_name("task") for _ in range(3)]
        try:
            with caplog.at_level("WARNING", logger="petiole_redis"):
                backend.wait([unique_name("nothing")], timeout_s=0.01)
                assert backend.listening_address(ids[0]) is None
                for task_id in ids:
                    record = addressed(task_id, "petiole:reply:someone")
                    storer = InThread(lambda r=record: backend.store(r, ttl_s=60))
                    assert list(backend.wait([task_id], timeout_s=10)) == [task_id]
                    storer.result(timeout_s=10)
        finally:
            backend.forget(ids)
            backend.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "refuses SUBSCRIBE" in m]) == 1, caplog.text
    assert len([m for m in messages if "refuses PUBLISH" in m]) == 1, caplog.text


@contextlib.contextmanager
def acl_user(server: RedisServer, **rules: Any) -> Iterator[str]:
    """A URL of ``server`` for a new ACL user with these rules (and every key)."""
    user, password = unique_name("user"), "pw-" + unique_name("p")
    with server.client() as admin:
        admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], **rules)
        try:
            yield server.url.replace("redis://", f"redis://{user}:{password}@", 1)
        finally:
            admin.acl_deluser(user)


def _tracked_clients(admin: redis.Redis) -> int:
    """Connections with tracking on (flag ``t``)."""
    return sum("t" in client["flags"] for client in admin.client_list())


def _subscribed_trackers(admin: redis.Redis) -> int:
    """Connections with tracking on that are subscribed to their channel too."""
    return sum("t" in client["flags"] and int(client["sub"]) >= 1 for client in admin.client_list())


def _calls(admin: redis.Redis) -> dict[str, int]:
    """Commands run so far, by name (``INFO commandstats``)."""
    stats: dict[str, Any] = admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
