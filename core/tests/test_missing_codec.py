"""A message compressed with a codec the worker does not have is dead-lettered on
its first delivery, its body never decoded, with a reason that names the codec
and, for a codec a known plugin provides, the distribution to install."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from importlib import metadata

import pytest

from petiole import Petiole
from petiole.envelope import PROTOCOL_VERSION, Envelope
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker
from petiole.transport import DeadLetterAdmin


@pytest.fixture
def ran() -> list[object]:
    """The arguments of every call of the task: none, when nothing was decoded."""
    return []


@pytest.fixture
def worker_app(ran: list[object]) -> Iterator[Petiole]:
    """An app whose worker does not have zstd: petiole-zstd, when installed, is disabled
    for it (as an operator does with the plugins_disabled setting)."""
    store = f"memory://{uuid.uuid4().hex}"
    app = Petiole(
        "no-zstd", broker=store, backend=store, config_file="/dev/null", plugins_disabled=["zstd"]
    )
    app.task(name="codec.echo")(lambda *args: ran.append(args))
    yield app
    app.close()


def _dead_letter_reason(app: Petiole, ran: list[object], encoding: str) -> str:
    """Publish a message whose body claims ``encoding``, run a worker, return the
    reason it was dead-lettered with."""
    headers = {
        "protocol": PROTOCOL_VERSION,
        "id": str(uuid.uuid4()),
        "task": "codec.echo",
        "sent_at": time.time(),
    }
    envelope = Envelope(headers, b"not decodable by anything", "application/json", encoding)
    transport = app.transport
    assert isinstance(transport, DeadLetterAdmin)
    transport.publish("default", envelope.to_bytes(), message_id=envelope.task_id)
    with start_worker(app):
        assert wait_until(lambda: len(transport.dead_letters("default")) == 1, timeout_s=10)
    (letter,) = transport.dead_letters("default")
    assert letter.delivery_count == 1, "dead-lettered on its first delivery"
    assert ran == [], "the task ran"
    return letter.reason


def test_an_unknown_encoding_is_dead_lettered_naming_it_and_what_is_installed(
    worker_app: Petiole, ran: list[object]
) -> None:
    reason = _dead_letter_reason(worker_app, ran, "x-made-up")
    assert "content encoding 'x-made-up' cannot be decoded here" in reason
    assert "no codec named 'x-made-up' is installed; installed: " in reason
    assert "zlib" in reason
    assert "petiole dlq requeue" in reason
    assert "pip install" not in reason, "no plugin is known to provide it"


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(_installed("petiole-zstd"), reason="petiole-zstd is installed: the next test")
def test_a_known_plugins_encoding_is_dead_lettered_naming_the_distribution_to_install(
    worker_app: Petiole, ran: list[object]
) -> None:
    reason = _dead_letter_reason(worker_app, ran, "zstd")
    assert "content encoding 'zstd' cannot be decoded here" in reason
    assert "no codec named 'zstd' is installed" in reason
    assert "install it with: pip install" in reason
    assert "petiole-zstd" in reason


@pytest.mark.skipif(not _installed("petiole-zstd"), reason="petiole-zstd is not installed")
def test_a_disabled_plugins_encoding_is_dead_lettered_saying_it_is_disabled(
    worker_app: Petiole, ran: list[object]
) -> None:
    reason = _dead_letter_reason(worker_app, ran, "zstd")
    assert "plugin 'zstd' (petiole-zstd), which provides it, is installed but disabled" in reason
    assert "pip install" not in reason
