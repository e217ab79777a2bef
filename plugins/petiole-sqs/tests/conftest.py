"""A moto SQS server for the whole session, and the dummy AWS credentials it takes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from petiole_sqs.testing import aws_test_environment, moto_server


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    """Dummy credentials for the session (moto accepts any; yours stay out of it)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(aws_test_environment(saved))
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def sqs_endpoint(aws_env: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint
