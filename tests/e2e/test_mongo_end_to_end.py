"""A producer and two worker processes on MongoDB (broker and results), one of
them SIGKILLed mid-run; nothing is lost.

The server is SecantusDB, run inside this test process on 127.0.0.1 (the
workers and the producer reach it over TCP), or the real mongod named by
PETIOLE_TEST_MONGODB_URL. SecantusDB scans a collection on every operation, so
the run is 300 tasks rather than the 1,000 of the Redis and SQS runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import run_sigkill_scenario, worker_env

from petiole.testing.servers import require_module

pytestmark = pytest.mark.slow

TASKS = 300


@pytest.fixture(scope="module")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_module("petiole_mongo", install_hint="pip install -e 'plugins/petiole-mongo[test]'")
    from petiole_mongo.testing import MongoServer

    server = MongoServer(tmp_path_factory.mktemp("mongo")).start()
    yield server.url
    server.stop()


def test_sigkilled_worker_loses_no_task_on_mongo(mongo_url: str, tmp_path: Path) -> None:
    # Short leases so a killed worker's tasks come back within seconds.
    env = worker_env(mongo_url, mongo_url, lease_s="3")
    summary = run_sigkill_scenario(env, tmp_path, count=TASKS)
    assert summary["sent"] == TASKS
    assert (summary["missing"], summary["wrong"]) == ([], []), summary
