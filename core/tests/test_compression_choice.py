"""Choosing the codec per app, per task and per call (``compression=``)."""

from __future__ import annotations

import bz2
import lzma
import zlib
from fractions import Fraction
from typing import Any

import pytest

from petiole import Petiole, signature
from petiole.envelope import Envelope
from petiole.errors import UnknownComponentError
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker
from petiole.transport import DeadLetterAdmin

LONG = "x" * 4000


def _sent(app: Petiole) -> Envelope:
    delivery = app.transport.reserve(["default"], max_messages=1, wait_s=0.5, lease_s=30)[0]
    return Envelope.from_bytes(delivery.payload)


@pytest.fixture
def app(app: Petiole) -> Petiole:
    app.configure(compression="zlib", compression_min_bytes=100)
    return app


def test_a_call_chooses_its_codec_over_the_apps(app: Petiole) -> None:
    @app.task
    def echo(text: str) -> str:
        return text

    echo.apply_async([LONG], compression="bzip2")
    sent = _sent(app)
    assert sent.content_encoding == "bzip2"
    assert bz2.decompress(sent.body) == f'[["{LONG}"],{{}}]'.encode()


def test_a_task_chooses_its_codec_and_a_call_still_wins(app: Petiole) -> None:
    @app.task(compression="lzma")
    def echo(text: str) -> str:
        return text

    echo.delay(LONG)
    by_task = _sent(app)
    assert by_task.content_encoding == "lzma"
    assert lzma.decompress(by_task.body) == f'[["{LONG}"],{{}}]'.encode()
    echo.apply_async([LONG], compression="zlib")
    by_call = _sent(app)
    assert by_call.content_encoding == "zlib"
    assert zlib.decompress(by_call.body) == f'[["{LONG}"],{{}}]'.encode()


def test_identity_sends_a_call_uncompressed_when_the_app_compresses(app: Petiole) -> None:
    app.send_task("t", [LONG], compression="identity")
    sent = _sent(app)
    assert sent.content_encoding == "identity"
    assert sent.body == f'[["{LONG}"],{{}}]'.encode()


def test_the_threshold_holds_for_a_chosen_codec_too(app: Petiole) -> None:
    app.send_task("t", ["short"], compression="bzip2")
    sent = _sent(app)
    assert (sent.content_encoding, sent.body) == ("identity", b'[["short"],{}]')


def test_an_unknown_codec_fails_the_call_whatever_its_size(app: Petiole) -> None:
    with pytest.raises(UnknownComponentError, match="no codec named 'zip'"):
        app.send_task("t", ["short"], compression="zip")


def test_a_signature_carries_its_codec(app: Petiole) -> None:
    signature("t", [LONG], app=app).set(compression="bzip2").apply_async()
    assert _sent(app).content_encoding == "bzip2"


def test_a_worker_runs_what_each_codec_sent(app: Petiole) -> None:
    @app.task
    def length(text: str) -> int:
        return len(text)

    with start_worker(app):
        results = [
            length.apply_async([LONG], compression=codec)
            for codec in ("identity", "zlib", "bzip2", "lzma")
        ]
        assert [r.get(timeout=10) for r in results] == [len(LONG)] * 4


def test_a_signature_of_a_registered_task_uses_the_tasks_own_choices(app: Petiole) -> None:
    @app.task(compression="lzma", serializer="pickle")
    def echo(text: str) -> str:
        return text

    echo.s(LONG).delay()
    sent = _sent(app)
    assert (sent.content_type, sent.content_encoding) == ("application/x-python-pickle", "lzma")


def test_a_retry_goes_out_with_the_tasks_serializer_and_codec(app: Petiole) -> None:
    """A task whose arguments only pickle carries can retry: the retry is sent the
    task's way, not the app's."""
    app.configure(accept_content=["json", "pickle"])

    @app.task(bind=True, serializer="pickle", compression="bzip2", default_retry_delay=0)
    def halve(self: Any, value: Fraction, pad: str) -> str:
        if self.request.retries == 0:
            raise self.retry()
        return str(value / 2)  # the result goes the app's way (JSON)

    with start_worker(app):
        assert halve.delay(Fraction(1, 3), LONG).get(timeout=10) == "1/6"


def test_a_workflow_that_cannot_continue_is_dead_lettered_not_requeued(app: Petiole) -> None:
    """The chain's next step takes a Fraction the JSON serializer refuses: no later
    delivery could send it, so the message goes to the dead letters, once, saying why."""
    app.configure(result_serializer="pickle", result_accept_content=["json", "pickle"])

    @app.task
    def third(n: int) -> Fraction:
        return Fraction(n, 3)

    @app.task
    def double(value: Fraction) -> Fraction:
        return value * 2

    transport = app.transport
    assert isinstance(transport, DeadLetterAdmin)
    with start_worker(app):
        (third.s(1).set(task_id="first-step") | double.s()).apply_async()
        # The first task itself ran and stored its result.
        assert app.AsyncResult("first-step").get(timeout=10) == Fraction(1, 3)
        assert wait_until(lambda: len(transport.dead_letters("default")) == 1, timeout_s=10)
    [letter] = transport.dead_letters("default")
    assert "workflow could not continue: SerializationError" in letter.reason
    assert "fractions.Fraction" in letter.reason
    assert letter.delivery_count == 1
