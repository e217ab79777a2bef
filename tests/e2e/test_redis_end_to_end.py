"""A producer and two workers, each its own OS process, on a real redis-server.

The server runs on 127.0.0.1 with the append-only file on and ``appendfsync
always`` (see petiole_redis.testing), so even a SIGKILLed server loses no
acknowledged write.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import (
    OutageLines,
    Producer,
    Workers,
    produce_until_under_way,
    run_sigkill_scenario,
    worker_env,
)

from petiole import Petiole
from petiole.testing import wait_until
from petiole.testing.servers import serve

pytest.importorskip("petiole_redis", reason="petiole-redis is not installed")

from petiole_redis.testing import RedisServer

pytestmark = pytest.mark.slow

OUTAGE_LINE = "connection lost"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from serve(RedisServer(tmp_path_factory.mktemp("redis")))


# The broker's two key layouts (petiole-redis README, "Streams layout"): each test runs on both.
LAYOUTS = {"lists": "?layout=lists", "streams": ""}


def env_for(server: RedisServer, layout: str) -> dict[str, str]:
    # Short leases so a killed worker's tasks come back within seconds.
    return worker_env(server.url + LAYOUTS[layout], server.url, lease_s="3")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_thousand_tasks_with_a_sigkilled_worker_lose_none_on_redis(
    redis_server: RedisServer, tmp_path: Path, layout: str
) -> None:
    env = env_for(redis_server, layout)
    summary = run_sigkill_scenario(env, tmp_path)
    assert (summary["missing"], summary["wrong"]) == ([], []), summary


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_redis_restarted_mid_run_loses_no_task_and_logs_one_line(
    tmp_path: Path, layout: str
) -> None:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    env = env_for(server, layout)
    app = Petiole("restart", broker=env["PETIOLE_BROKER_URL"], backend=server.url)
    outage = OutageLines(OUTAGE_LINE)
    logging.getLogger("petiole_redis").addHandler(outage)
    workers = Workers(env, tmp_path)
    producer: Producer | None = None
    try:
        workers.start("-P", "processes", "-c", "2")
        workers.start("-P", "threads", "-c", "4")
        workers.wait_ready()
        producer = produce_until_under_way(
            env, workers, lambda: app.transport.size("default"), task_delay_s=0.005, timeout_s=120
        )

        server.kill()
        # While the server is down, this process publishes too: each publish
        # waits, retrying with backoff, until the server is back.
        late_ids: list[str] = []

        def publish_late() -> None:
            for i in range(100):
                late_ids.append(app.send_task("e2e.square", args=(1000 + i,)).id)

        publisher = threading.Thread(target=publish_late, name="late-publisher")
        publisher.start()
        assert outage.seen.wait(30), "the publisher never noticed the server was down"
        # Keep it down until every worker has run into the outage too.
        assert wait_until(
            lambda: all(OUTAGE_LINE in workers.log(i) for i in range(2)), timeout_s=30
        ), workers.logs()
        server.start()
        publisher.join(60)
        assert not publisher.is_alive(), "publishing did not resume after the restart"

        summary = producer.summary(timeout_s=150)
        late = app.backend.wait(late_ids, timeout_s=60)
    finally:
        logging.getLogger("petiole_redis").removeHandler(outage)
        if producer is not None and producer.proc.poll() is None:
            producer.proc.kill()
            producer.proc.communicate()
        codes = workers.stop_all()
        app.close()
        server.stop()

    assert summary["correct"] == 1000, (summary, workers.logs())
    assert summary["missing"] == [], summary
    assert summary["wrong"] == [], summary
    assert len(late) == 100
    assert all(record.state == "SUCCESS" for record in late.values())
    # One line for the outage in this process (its broker connection), however
    # many publishes waited through it.
    assert len(outage.lines) == 1, outage.lines
    assert "redis broker redis://127.0.0.1:" in outage.lines[0]
    # The workers rode it out inside the plugin: their own reserve loop never
    # saw an error, and each connection logged the outage at most once.
    for index in range(2):
        log = workers.log(index)
        assert "cannot reserve from the broker" not in log, log[-4000:]
        assert "Traceback" not in log, log[-4000:]
        broker_lines = [
            line for line in log.splitlines() if OUTAGE_LINE in line and "redis broker" in line
        ]
        assert len(broker_lines) <= 1, broker_lines
    assert codes == [0, 0], workers.logs()
