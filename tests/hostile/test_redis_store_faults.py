"""Bad entries in the Redis broker cost only themselves, with a real worker:
a corrupt entry goes to the dead-letter store with its reason while the good
tasks reserved in the same batch run, and a stored message that nothing would
deliver (an orphan) is found and run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("petiole_redis", reason="petiole-redis is not installed")

from petiole_redis._keys import Keys
from petiole_redis.testing import RedisServer

from petiole import Petiole
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker

QUEUE = "default"
RESULT_WAIT_S = 5.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (the test edits its keys by hand)."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def app(server: RedisServer) -> Iterator[Petiole]:
    # The list layout: these tests edit its keys (the streams layout's corrupt
    # entries are petiole-redis's tests/test_streams.py).
    broker = f"{server.url}?layout=lists"
    app = Petiole("store-faults", broker=broker, backend=server.url, config_file="/dev/null")

    @app.task(name="faults.double")
    def double(value: int) -> int:
        return 2 * value

    yield app
    app.close()


def redis_id_of(server: RedisServer, task_id: str) -> bytes:
    """The broker's id of the message of ``task_id`` (its meta ends with the task id)."""
    with server.client() as client:
        metas = client.hgetall(Keys().queue(QUEUE).meta)
    [ident] = [i for i, meta in metas.items() if meta.endswith(f"|{task_id}".encode())]
    return bytes(ident)


def test_corrupt_meta_entry_is_dead_lettered_and_the_five_good_tasks_of_its_batch_run(
    server: RedisServer, app: Petiole
) -> None:
    double = app.tasks["faults.double"]
    results = [double.delay(i) for i in range(6)]
    bad = results[2]
    ident = redis_id_of(server, bad.id)
    with server.client() as client:
        client.hset(Keys().queue(QUEUE).meta, ident, "garbage")
    good = [r for r in results if r is not bad]

    # Concurrency 2 x prefetch 4: the first reserve takes all six in one script call.
    with start_worker(app, pool="threads", concurrency=2, prefetch_multiplier=4):
        values = [r.get(timeout=RESULT_WAIT_S) for r in good]
        assert wait_until(lambda: app.transport.size(QUEUE) == 0, timeout_s=RESULT_WAIT_S)

    assert values == [0, 2, 6, 8, 10]
    [letter] = app.transport.dead_letters(QUEUE)
    assert letter.dead_letter_id == ident.decode()
    assert letter.reason == (
        'corrupt entry: its metadata "garbage" is not "<count>|<priority>|<message_id>"'
    )
    assert bad.id.encode() in letter.payload  # the task's own message, kept whole


def test_orphaned_message_is_requeued_and_run_by_a_worker(
    server: RedisServer, app: Petiole
) -> None:
    result = app.tasks["faults.double"].delay(21)
    ident = redis_id_of(server, result.id)
    with server.client() as client:  # stored, but in no list: nothing would deliver it
        assert client.lrem(Keys().queue(QUEUE).ready[0], 0, ident) == 1

    with start_worker(app, pool="threads", concurrency=1):
        assert result.get(timeout=RESULT_WAIT_S) == 42

    assert app.transport.size(QUEUE) == 0
    assert app.transport.dead_letters(QUEUE) == []


def test_tasks_held_when_the_broker_lost_its_data_run_on_the_worker_that_holds_them(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = Petiole(
        "data-loss", broker=server.url, backend=server.url, config_file="/dev/null", lease_s=1.0
    )
    release = threading.Event()
    runs: list[int] = []

    @app.task(name="loss.block")
    def block() -> None:
        release.wait(10)

    @app.task(name="loss.record", ignore_result=True)
    def record(value: int) -> None:
        runs.append(value)

    block.delay()
    for i in range(3):
        record.delay(i)
    with (
        caplog.at_level(logging.WARNING, logger="petiole.worker"),
        start_worker(app, pool="threads", concurrency=1, prefetch_multiplier=8) as worker,
    ):
        assert wait_until(lambda: worker.held_count() == 4, timeout_s=RESULT_WAIT_S)
        server.restart(keep_data=False)
        # The lease keeper's next renewals reconnect, find the data gone, and say so.
        assert wait_until(
            lambda: "the broker lost its data" in caplog.text, timeout_s=RESULT_WAIT_S
        )
        release.set()
        assert wait_until(lambda: sorted(runs) == [0, 1, 2], timeout_s=RESULT_WAIT_S)
    app.close()
    assert "stalled" not in caplog.text  # not blamed on the worker
