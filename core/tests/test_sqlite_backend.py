"""Behaviour specific to the embedded SQLite result backend.

The result backend contract itself is checked by ``petiole.testing``'s
conformance suite; these tests cover what only this implementation has: its
URL, expiry by lazy deletion, waking waiters in this process, and atomic sets
and counters across processes sharing one file.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from core_helpers import run_python, waiting_in_thread

from petiole import states
from petiole._builtins.sqlite_backend import SqliteBackend, create_backend
from petiole.backend import ResultRecord
from petiole.errors import ConfigError, ResultBackendError
from petiole.testing import wait_until

# A first poll delay no test waits for: only a notification can wake the waiter.
_NEVER_S = 600.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


@pytest.fixture
def backend(db_path: Path) -> Iterator[SqliteBackend]:
    b = SqliteBackend(db_path)
    yield b
    b.close()


def success(task_id: str, payload: bytes = b"42") -> ResultRecord:
    return ResultRecord(task_id, states.SUCCESS, payload, date_done=time.time())


def count_rows(db_path: Path, table: str) -> int:
    conn = sqlite3.connect(db_path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


# -- URL -------------------------------------------------------------------------------


def test_bare_url_uses_petiole_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    b = create_backend("sqlite://", {"poll_interval_ms": 20})
    b.close()
    assert isinstance(b, SqliteBackend)
    assert b.path == tmp_path / "petiole.db"
    assert b.options.poll_interval_ms == 20


def test_unknown_option_is_a_config_error_listing_the_valid_ones(db_path: Path) -> None:
    with pytest.raises(ConfigError, match="poll_interval_ms") as info:
        create_backend(f"sqlite:///{db_path}?ttl=5", {})
    assert "'ttl'" in str(info.value)


def test_file_that_is_not_a_database_raises_result_backend_error(db_path: Path) -> None:
    db_path.write_bytes(b"not a database " * 200)
    with pytest.raises(ResultBackendError, match=str(db_path)):
        SqliteBackend(db_path)


# -- expiry ------------------------------------------------------------------------------


def test_expired_result_reads_as_absent_before_it_is_deleted(
    db_path: Path,
) -> None:
    backend = SqliteBackend(db_path, sweep_interval_s=3600)
    try:
        backend.store(success("early"), ttl_s=None)  # runs the first sweep
        backend.store(success("short-lived"), ttl_s=0.05)
        assert wait_until(lambda: backend.get("short-lived") is None, timeout_s=10)
        assert backend.get_many(["short-lived", "early"]).keys() == {"early"}
        assert backend.wait(["short-lived"], timeout_s=0) == {}
        assert count_rows(db_path, "petiole_results") == 2  # not swept yet
    finally:
        backend.close()


def test_store_sweeps_expired_results_sets_and_counters(db_path: Path) -> None:
    backend = SqliteBackend(db_path, sweep_interval_s=0)
    try:
        backend.store(success("gone"), ttl_s=0)
        backend.set_add("chord", "a", ttl_s=0)
        backend.incr("counter", ttl_s=0)
        backend.set_add("kept-set", "a", ttl_s=None)
        backend.store(success("kept"), ttl_s=None)  # sweeps
    finally:
        backend.close()
    assert count_rows(db_path, "petiole_results") == 1
    assert count_rows(db_path, "petiole_sets") == 1
    assert count_rows(db_path, "petiole_set_members") == 1
    assert count_rows(db_path, "petiole_counters") == 0


def test_sweep_deletes_backlogs_larger_than_one_batch(db_path: Path) -> None:
    backend = SqliteBackend(db_path, sweep_interval_s=3600)
    try:
        backend.store(success("kept"), ttl_s=None)  # runs the first sweep
        for i in range(2500):
            backend.store(success(f"t-{i}"), ttl_s=0)
        assert backend.sweep() == 2500
    finally:
        backend.close()
    assert count_rows(db_path, "petiole_results") == 1


def test_expired_set_starts_empty_on_the_next_add(backend: SqliteBackend) -> None:
    backend.set_add("chord", "a", ttl_s=0)
    assert backend.set_add("chord", "b", ttl_s=60) == 1
    assert backend.set_add("chord", "a", ttl_s=60) == 2


def test_each_add_refreshes_the_whole_sets_expiry(backend: SqliteBackend) -> None:
    backend.set_add("chord", "a", ttl_s=0)
    backend.set_add("chord", "b", ttl_s=None)
    assert backend.set_add("chord", "c", ttl_s=None) == 2


def test_expired_counter_restarts_at_zero(backend: SqliteBackend) -> None:
    backend.incr("n", 5, ttl_s=0)
    assert backend.incr("n", 1, ttl_s=60) == 1


# -- values --------------------------------------------------------------------------------


def test_meta_that_is_not_json_raises_result_backend_error(backend: SqliteBackend) -> None:
    record = ResultRecord("t-1", states.SUCCESS, b"", meta={"when": object()})
    with pytest.raises(ResultBackendError, match="t-1"):
        backend.store(record, ttl_s=None)
    assert backend.get("t-1") is None


def test_get_many_reads_more_ids_than_one_statement_can_bind(backend: SqliteBackend) -> None:
    ids = [f"t-{i}" for i in range(1200)]
    for task_id in ids[::2]:
        backend.store(success(task_id), ttl_s=None)
    assert sorted(backend.get_many(ids)) == sorted(ids[::2])
    backend.forget(ids)
    assert backend.get_many(ids) == {}


def test_results_outlive_the_backend_that_stored_them(db_path: Path) -> None:
    first = SqliteBackend(db_path)
    first.store(success("t-1", b"kept"), ttl_s=None)
    first.close()
    second = SqliteBackend(db_path)
    try:
        record = second.get("t-1")
    finally:
        second.close()
    assert record is not None
    assert record.payload == b"kept"


# -- waiting ----------------------------------------------------------------------------------


def test_store_in_this_process_wakes_a_waiting_wait_at_once(db_path: Path) -> None:
    waiter = SqliteBackend(db_path, first_poll_delay_s=_NEVER_S)
    writer = SqliteBackend(db_path)
    try:
        waiting = waiting_in_thread(waiter, lambda: waiter.wait(["t-1"], timeout_s=60))
        stored_at = time.monotonic()
        writer.store(success("t-1"), ttl_s=None)
        found = waiting.result()
    finally:
        waiter.close()
        writer.close()
    assert found.keys() == {"t-1"}
    assert waiting.finished_at - stored_at < 2.0


def test_store_from_another_process_is_found_by_polling(db_path: Path) -> None:
    backend = SqliteBackend(db_path)
    try:
        waiting = waiting_in_thread(backend, lambda: backend.wait(["t-1"], timeout_s=30))
        writer = run_python(
            """
            import sys, time
            from petiole._builtins.sqlite_backend import create_backend
            from petiole.backend import ResultRecord
            b = create_backend(sys.argv[1], {})
            b.store(ResultRecord("t-1", "SUCCESS", b"far", date_done=time.time()), ttl_s=None)
            b.close()
            """,
            f"sqlite:///{db_path}",
        )
        assert writer.wait(timeout=60) == 0
        stored_at = time.monotonic()
        found = waiting.result(timeout_s=30)
    finally:
        backend.close()
    assert found["t-1"].payload == b"far"
    assert waiting.finished_at - stored_at < 2.0


def test_close_wakes_a_waiting_wait_with_what_it_found(backend: SqliteBackend) -> None:
    backend.store(success("done"), ttl_s=None)
    waiting = waiting_in_thread(backend, lambda: backend.wait(["done", "never"], timeout_s=60))
    backend.close()
    assert waiting.result().keys() == {"done"}


# -- atomicity across processes -----------------------------------------------------------------


_CHORD_MEMBER = """
    import json, sys
    from petiole._builtins.sqlite_backend import create_backend
    b = create_backend(sys.argv[1], {})
    print("ready", flush=True)
    sys.stdin.readline()
    sizes = []
    for i in range(int(sys.argv[2]), 200, 2):
        sizes.append(b.set_add("chord", f"member-{i}", ttl_s=600))
        b.set_add("chord", f"member-{i}", ttl_s=600)  # a redelivered member
    b.close()
    print(json.dumps(sizes), flush=True)
"""


def test_set_add_from_several_processes_reports_each_size_exactly_once(db_path: Path) -> None:
    SqliteBackend(db_path).close()  # create the tables before the race
    children = [run_python(_CHORD_MEMBER, f"sqlite:///{db_path}", str(i)) for i in range(2)]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=120)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [child.returncode for child in children] == [0, 0]
    sizes = [size for out in outputs for size in json.loads(out.strip().splitlines()[-1])]
    # Exactly one caller saw 200: the chord's last member is detected once.
    assert sorted(sizes) == list(range(1, 201))
