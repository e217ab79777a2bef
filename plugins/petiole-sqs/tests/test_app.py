"""The transport as an app uses it: found by URL scheme, sizes checked at
apply_async, and ETAs beyond SQS's 15-minute delay re-delayed by the worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from petiole_sqs.testing import broker_url
from petiole_sqs.transport import SqsTransport

from petiole import Petiole
from petiole.errors import MessageTooLarge
from petiole.testing import unique_name
from petiole.testing.in_thread import start_worker


@pytest.fixture
def make_app(sqs_endpoint: str, tmp_path: Path) -> Iterator[Callable[..., Petiole]]:
    apps: list[Petiole] = []

    def make(**options: object) -> Petiole:
        app = Petiole(
            "sqs-test",
            broker=broker_url(sqs_endpoint, **options),
            backend=f"sqlite:///{tmp_path / 'results.db'}",
            default_queue=unique_name("petiole-sqs"),
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def test_sqs_scheme_loads_the_plugins_transport(make_app: Callable[..., Petiole]) -> None:
    app = make_app()

    assert isinstance(app.transport, SqsTransport)


def test_apply_async_of_a_body_too_large_raises_naming_size_and_limit(
    make_app: Callable[..., Petiole],
) -> None:
    app = make_app()

    @app.task(name="sqs.echo")
    def echo(text: str) -> str:
        return text

    limit = app.transport.capabilities.max_message_bytes
    with pytest.raises(MessageTooLarge, match=rf"exceeds the SQS limit of {limit} bytes") as info:
        echo.apply_async(("x" * 300_000,))
    assert info.value.size_bytes > 300_000
    assert app.transport.size(app.settings.default_queue) == 0


def test_eta_beyond_the_maximum_delay_runs_when_due(make_app: Callable[..., Petiole]) -> None:
    # max_delay_s=1 stands in for SQS's 15 minutes: a 3.5 s ETA needs the worker
    # to re-delay the message several times, exactly as a 1-hour ETA would.
    app = make_app(max_delay_s=1)

    @app.task(name="sqs.ran_at")
    def ran_at() -> float:
        return time.time()

    with start_worker(app, concurrency=1):
        eta = time.time() + 3.5
        result = ran_at.apply_async(eta=eta)
        ran = result.get(timeout=15)

    assert eta - 0.05 <= ran <= eta + 2.0
