"""A producer and two worker processes on SQS (moto's server), results in SQLite;
one worker is SIGKILLed mid-run and nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import run_sigkill_scenario, worker_env

from petiole.testing.servers import require_module

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sqs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_module("petiole_sqs", install_hint="pip install -e 'plugins/petiole-sqs[test]'")
    from petiole_sqs.testing import moto_server

    with moto_server(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint


@pytest.fixture
def env(sqs_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from petiole_sqs.testing import TEST_AWS_ENV, aws_test_environment, broker_url

    for name, value in TEST_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # Short leases so a killed worker's tasks come back within seconds.
    base = worker_env(
        broker_url(sqs_endpoint),
        f"sqlite:///{tmp_path / 'results.db'}",
        lease_s="3",
    )
    return aws_test_environment(base)


def test_sigkilled_worker_loses_no_task_on_sqs(env: dict[str, str], tmp_path: Path) -> None:
    summary = run_sigkill_scenario(env, tmp_path)
    assert (summary["missing"], summary["wrong"]) == ([], []), summary
