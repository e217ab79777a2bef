"""Behaviour specific to the embedded SQLite transport.

The transport contract itself is checked by ``petiole.testing``'s conformance
suite; these tests cover what only this implementation has: its URL forms, the
file it writes, several processes sharing one file, and how waiting reservers
are woken.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from core_helpers import drain_in_threads, run_python, waiting_in_thread

from petiole._builtins import sqlite_transport
from petiole._builtins._sqlite import SqliteOptions
from petiole._builtins.sqlite_transport import SqliteTransport, create_transport
from petiole.errors import ConfigError, TransportError
from petiole.transport import Delivery

# A first poll delay no test waits for: only a notification can wake the reserver.
_NEVER_S = 600.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "broker.db"


@pytest.fixture
def transport(db_path: Path) -> Iterator[SqliteTransport]:
    t = SqliteTransport(db_path)
    yield t
    t.close()


# -- URLs and options --------------------------------------------------------------


def test_bare_url_uses_petiole_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    t = create_transport("sqlite://", {})
    t.close()
    assert isinstance(t, SqliteTransport)
    assert t.path == tmp_path / "petiole.db"
    assert (tmp_path / "petiole.db").is_file()


def test_three_slashes_give_a_path_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    t = create_transport("sqlite:///data/jobs.db", {})
    t.close()
    assert isinstance(t, SqliteTransport)
    assert t.path == tmp_path / "data" / "jobs.db"


def test_relative_path_is_fixed_when_the_transport_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    t = create_transport("sqlite:///jobs.db", {})
    monkeypatch.chdir(Path(tmp_path.anchor))
    t.publish("q", b"x")
    t.close()
    assert isinstance(t, SqliteTransport)
    assert t.path == tmp_path / "jobs.db"


def test_four_slashes_give_an_absolute_path(tmp_path: Path) -> None:
    t = create_transport(f"sqlite:///{tmp_path}/abs.db", {})
    t.close()
    assert isinstance(t, SqliteTransport)
    assert t.path == tmp_path / "abs.db"


def test_percent_encoded_path_is_decoded(tmp_path: Path) -> None:
    t = create_transport(f"sqlite:///{tmp_path}/my%20jobs.db", {})
    t.close()
    assert isinstance(t, SqliteTransport)
    assert t.path == tmp_path / "my jobs.db"


def test_missing_directory_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=str(missing)):
        create_transport(f"sqlite:///{missing}/jobs.db", {})
    assert not missing.exists()


def test_url_naming_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        create_transport(f"sqlite:///{tmp_path}", {})


def test_url_with_a_host_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="host"):
        create_transport("sqlite://localhost/jobs.db", {})


def test_in_memory_database_is_refused_in_favour_of_memory_url() -> None:
    with pytest.raises(ConfigError, match="memory://"):
        create_transport("sqlite:///:memory:", {})


def test_query_parameters_override_options(db_path: Path) -> None:
    t = create_transport(
        f"sqlite:///{db_path}?poll_interval_ms=50",
        {"poll_interval_ms": 500, "busy_timeout_ms": 1234, "synchronous": "NORMAL"},
    )
    t.close()
    assert isinstance(t, SqliteTransport)
    assert t.options.poll_interval_ms == 50
    assert t.options.busy_timeout_ms == 1234
    assert t.options.synchronous == "normal"


def test_unknown_option_is_a_config_error_listing_the_valid_ones(db_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        create_transport(f"sqlite:///{db_path}", {"poll_interval": 50})
    message = str(info.value)
    assert "'poll_interval'" in message
    for valid in ("poll_interval_ms", "busy_timeout_ms", "synchronous"):
        assert valid in message


def test_unknown_query_parameter_is_a_config_error(db_path: Path) -> None:
    with pytest.raises(ConfigError, match="'colour'"):
        create_transport(f"sqlite:///{db_path}?colour=blue", {})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("poll_interval_ms", "fast"),
        ("poll_interval_ms", 0),
        ("busy_timeout_ms", -1),
        ("busy_timeout_ms", True),
        ("synchronous", "extra"),
    ],
)
def test_bad_option_value_is_a_config_error_naming_the_key(
    db_path: Path, key: str, value: object
) -> None:
    with pytest.raises(ConfigError, match=key):
        create_transport(f"sqlite:///{db_path}", {key: value})


# -- the file ---------------------------------------------------------------------


def test_database_is_switched_to_wal_journal_mode(
    transport: SqliteTransport, db_path: Path
) -> None:
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_file_that_is_not_a_database_raises_transport_error_naming_it(db_path: Path) -> None:
    db_path.write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(TransportError, match=str(db_path)):
        SqliteTransport(db_path)


def test_claim_walks_the_order_index_without_sorting(
    transport: SqliteTransport, db_path: Path
) -> None:
    conn = sqlite3.connect(db_path)
    try:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN " + sqlite_transport._CLAIM_SELECT, ("q", time.time(), 10)
        ).fetchall()
    finally:
        conn.close()
    details = " | ".join(row[-1] for row in plan)
    assert "petiole_messages_by_order" in details
    assert "TEMP B-TREE" not in details


def test_out_of_range_priority_is_clamped_to_nine(transport: SqliteTransport) -> None:
    transport.publish("q", b"forty-two", priority=42)
    transport.publish("q", b"nine", priority=9)
    transport.publish("q", b"below zero", priority=-3)
    transport.publish("q", b"zero", priority=0)
    got = transport.reserve(["q"], max_messages=4, wait_s=0, lease_s=60)
    assert [d.payload for d in got] == [b"forty-two", b"nine", b"below zero", b"zero"]


def test_messages_outlive_the_transport_that_published_them(db_path: Path) -> None:
    first = SqliteTransport(db_path)
    first.publish("q", b"kept", message_id="t-1", priority=3)
    first.close()
    second = SqliteTransport(db_path)
    try:
        [delivery] = second.reserve(["q"], max_messages=1, wait_s=0, lease_s=60)
    finally:
        second.close()
    assert (delivery.payload, delivery.message_id) == (b"kept", "t-1")


def test_requeued_dead_letter_keeps_its_priority_and_message_id(
    transport: SqliteTransport,
) -> None:
    transport.publish("q", b"urgent", message_id="t-1", priority=8)
    [delivery] = transport.reserve(["q"], max_messages=1, wait_s=0, lease_s=60)
    transport.dead_letter(delivery, reason="poison")
    transport.publish("q", b"ordinary", message_id="t-2", priority=1)
    assert transport.requeue_dead_letters("q") == 1
    got = transport.reserve(["q"], max_messages=2, wait_s=0, lease_s=60)
    assert [(d.payload, d.message_id, d.delivery_count) for d in got] == [
        (b"urgent", "t-1", 1),
        (b"ordinary", "t-2", 1),
    ]


def test_receipt_from_another_transport_is_treated_as_stale(transport: SqliteTransport) -> None:
    transport.publish("q", b"x")
    [real] = transport.reserve(["q"], max_messages=1, wait_s=0, lease_s=60)
    foreign = Delivery(payload=b"x", queue="q", receipt="not-ours", delivery_count=1)
    transport.ack(foreign)
    assert transport.extend(foreign, lease_s=60) is False
    assert transport.size("q") == 1
    transport.ack(real)
    assert transport.size("q") == 0


def test_broker_and_result_backend_share_one_file(db_path: Path) -> None:
    from petiole._builtins.sqlite_backend import SqliteBackend
    from petiole.backend import ResultRecord

    transport = SqliteTransport(db_path)
    backend = SqliteBackend(db_path)
    try:
        transport.publish("q", b"job")
        backend.store(ResultRecord("t-1", "SUCCESS", b"42"), ttl_s=None)
        [delivery] = transport.reserve(["q"], max_messages=1, wait_s=0, lease_s=60)
        record = backend.get("t-1")
    finally:
        transport.close()
        backend.close()
    assert delivery.payload == b"job"
    assert record is not None
    assert record.payload == b"42"


# -- leases -------------------------------------------------------------------------


def test_expired_lease_not_yet_retaken_can_still_be_acked(transport: SqliteTransport) -> None:
    transport.publish("q", b"x")
    [delivery] = transport.reserve(["q"], max_messages=1, wait_s=0, lease_s=0.0)
    transport.ack(delivery)
    assert transport.size("q") == 0


# -- waiting and waking ---------------------------------------------------------------


def test_publish_in_this_process_wakes_a_waiting_reserver_at_once(db_path: Path) -> None:
    consumer = SqliteTransport(db_path, first_poll_delay_s=_NEVER_S)
    producer = SqliteTransport(db_path)
    try:
        waiting = waiting_in_thread(
            consumer, lambda: consumer.reserve(["q"], max_messages=1, wait_s=60, lease_s=60)
        )
        published_at = time.monotonic()
        producer.publish("q", b"wake up")
        [delivery] = waiting.result()
        assert delivery.payload == b"wake up"
        assert waiting.finished_at - published_at < 2.0
    finally:
        consumer.close()
        producer.close()


def test_waiting_reserver_wakes_when_a_delayed_message_falls_due(db_path: Path) -> None:
    transport = SqliteTransport(db_path, first_poll_delay_s=_NEVER_S)
    try:
        transport.publish("q", b"later", delay_s=0.3)
        started = time.monotonic()
        [delivery] = transport.reserve(["q"], max_messages=1, wait_s=30, lease_s=60)
        elapsed = time.monotonic() - started
    finally:
        transport.close()
    assert delivery.payload == b"later"
    assert 0.25 <= elapsed < 3.0


def test_waiting_reserver_wakes_when_a_lease_runs_out(db_path: Path) -> None:
    transport = SqliteTransport(db_path, first_poll_delay_s=_NEVER_S)
    try:
        transport.publish("q", b"x")
        transport.reserve(["q"], max_messages=1, wait_s=0, lease_s=0.3)
        [again] = transport.reserve(["q"], max_messages=1, wait_s=30, lease_s=60)
    finally:
        transport.close()
    assert again.delivery_count == 2


def test_waiting_reserver_does_not_hold_the_write_lock(
    transport: SqliteTransport, db_path: Path
) -> None:
    waiting = waiting_in_thread(
        transport, lambda: transport.reserve(["q"], max_messages=1, wait_s=30, lease_s=60)
    )
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # would raise "database is locked" if held
        other.execute("ROLLBACK")
    finally:
        other.close()
    transport.publish("q", b"done")
    assert [d.payload for d in waiting.result()] == [b"done"]


def test_publish_from_another_process_is_found_by_polling(db_path: Path) -> None:
    # notify=off on both sides: the polling of earlier releases (test_sqlite_wakeup.py
    # covers the doorbells that wake waiters in other processes by default).
    transport = SqliteTransport(db_path, SqliteOptions(notify="off"))
    try:
        waiting = waiting_in_thread(
            transport, lambda: transport.reserve(["q"], max_messages=1, wait_s=30, lease_s=60)
        )
        producer = run_python(
            """
            import sys
            from petiole._builtins.sqlite_transport import create_transport
            t = create_transport(sys.argv[1], {})
            t.publish("q", b"from afar")
            t.close()
            """,
            f"sqlite:///{db_path}?notify=off",
        )
        assert producer.wait(timeout=60) == 0
        published_at = time.monotonic()
        [delivery] = waiting.result(timeout_s=30)
    finally:
        transport.close()
    assert delivery.payload == b"from afar"
    # The default poll interval is 100 ms; allow a wide margin for a loaded machine.
    assert waiting.finished_at - published_at < 2.0


def test_close_wakes_waiting_reservers_with_no_messages(transport: SqliteTransport) -> None:
    waiting = waiting_in_thread(
        transport, lambda: transport.reserve(["q"], max_messages=1, wait_s=60, lease_s=60)
    )
    transport.close()
    assert waiting.result() == []


def test_calls_after_close_raise_transport_error(transport: SqliteTransport) -> None:
    transport.close()
    with pytest.raises(TransportError, match="closed"):
        transport.publish("q", b"x")


# -- concurrency ------------------------------------------------------------------------


def test_threads_with_one_transport_each_reserve_distinct_messages(
    transport: SqliteTransport,
) -> None:
    for i in range(300):
        transport.publish("q", str(i).encode())
    seen = drain_in_threads(transport, threads=6, wait_s=0.2)
    assert sorted(seen) == sorted(str(i).encode() for i in range(300))
    assert max(seen.values()) == 1


_DRAINER = """
    import json, sys
    from petiole._builtins.sqlite_transport import create_transport
    t = create_transport(sys.argv[1], {})
    print("ready", flush=True)
    sys.stdin.readline()
    got = []
    while True:
        batch = t.reserve(["jobs"], max_messages=3, wait_s=0.5, lease_s=60)
        if not batch:
            break
        for d in batch:
            got.append([d.payload.decode(), d.delivery_count])
            t.ack(d)
    t.close()
    print(json.dumps(got), flush=True)
"""


def test_processes_reserving_from_one_file_get_every_message_exactly_once(
    db_path: Path,
) -> None:
    producer = SqliteTransport(db_path)
    for i in range(400):
        producer.publish("jobs", str(i).encode(), priority=i % 3)
    children = [run_python(_DRAINER, f"sqlite:///{db_path}") for _ in range(2)]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:  # released together, so they really contend
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
    per_child = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    payloads = Counter(payload for got in per_child for payload, _ in got)
    assert sorted(payloads, key=int) == [str(i) for i in range(400)]
    assert max(payloads.values()) == 1
    assert {count for got in per_child for _, count in got} == {1}
    assert all(per_child), "one process got no messages: the test did not exercise contention"
    assert producer.size("jobs") == 0
    producer.close()


def test_a_file_locked_at_start_up_is_waited_for_beyond_busy_timeout(db_path: Path) -> None:
    # A file still in rollback-journal mode, held exclusively by another connection
    # (as while another process switches it to WAL and creates its tables).
    holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, holder.execute, args=("COMMIT",))
    release.start()
    started = time.monotonic()
    try:
        transport = create_transport(f"sqlite:///{db_path}?busy_timeout_ms=100", {})
    finally:
        release.join()
        holder.close()
    try:
        assert time.monotonic() - started >= 0.4  # it waited for the holder
        transport.publish("q", b"after the lock")
        assert transport.size("q") == 1
    finally:
        transport.close()
