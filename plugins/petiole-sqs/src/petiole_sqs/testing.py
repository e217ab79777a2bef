"""Helpers for tests against moto's standalone SQS server (``pip install 'petiole-sqs[test]'``).

Used by this plugin's tests and the repository's end-to-end tests; a third-party
project can use them the same way. Imports pytest, so import it only in tests.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

from petiole.testing.servers import ServerProcess, free_port, require_module

#: Dummy credentials and region: moto accepts any, and these keep a developer's
#: real AWS credentials and profile out of the tests.
TEST_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "petiole-test-key",
    "AWS_SECRET_ACCESS_KEY": "petiole-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL")


def aws_test_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the test credentials."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _CLEARED}
    env.update(TEST_AWS_ENV)
    return env


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """Run moto's server on 127.0.0.1 and a free port; yield its endpoint URL.

    It runs with ReceiveMessage made atomic (see :mod:`petiole_sqs._moto_launcher`):
    plain moto can hand one message to two concurrent receives. Skips the test
    (fails it under CI=true) when moto's server is not installed.
    """
    require_module("moto.server", install_hint="pip install 'petiole-sqs[test]'")
    port = free_port()
    server = ServerProcess(
        "moto_server",
        [sys.executable, "-m", "petiole_sqs._moto_launcher", "-H", "127.0.0.1", "-p", str(port)],
        port=port,
        log_path=log_dir / "moto_server.log",
        env=aws_test_environment(),
    )
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def broker_url(endpoint_url: str, **options: object) -> str:
    """An ``sqs://`` URL for a test server, with extra options as query parameters."""
    query = {"endpoint_url": endpoint_url, "region": TEST_AWS_ENV["AWS_DEFAULT_REGION"]}
    query.update(
        {
            key: str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in options.items()
        }
    )
    return f"sqs://?{urlencode(query)}"
