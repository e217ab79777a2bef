"""Hostile messages against the message stages: each is dead-lettered with its
reason on its first delivery, and its body is never deserialized. The proof is
a pickle whose loading would create a file, sent to workers that accept pickle
but require signatures."""

from __future__ import annotations

import pickle
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from petiole import Petiole
from petiole.envelope import PROTOCOL_VERSION, Envelope
from petiole.stages import HmacSha256Signer
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker

KEY = "the-cluster-signing-key-32-bytes-long"
PICKLE = "application/x-python-pickle"
JSON = "application/json"


class _CreatesFile:
    """Unpickling this creates ``path``: the file exists only if a body was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


@pytest.fixture
def guarded(app: Petiole) -> Petiole:
    """A worker's app that accepts pickle but only signed messages."""
    app.configure(
        accept_content=["json", "pickle"],
        signer="hmac-sha256",
        signing_key=KEY,
        require_signature=True,
    )

    @app.task(name="hostile.echo")
    def echo(*args: Any) -> Any:
        return list(args)

    return app


def _envelope(body: bytes, content_type: str = PICKLE, encoding: str = "identity") -> Envelope:
    headers = {
        "protocol": PROTOCOL_VERSION,
        "id": str(uuid.uuid4()),
        "task": "hostile.echo",
        "sent_at": time.time(),
    }
    return Envelope(headers, body, content_type, encoding)


def _publish(app: Petiole, payload: bytes, task_id: str) -> None:
    app.transport.publish("default", payload, message_id=task_id)


def _evil_body(path: Path) -> bytes:
    return pickle.dumps([[_CreatesFile(path)], {}])


def _dead_letter_of(app: Petiole, count: int = 1) -> list[Any]:
    assert wait_until(lambda: len(app.transport.dead_letters("default")) >= count, timeout_s=10)
    letters = app.transport.dead_letters("default")
    assert {d.delivery_count for d in letters} == {1}, "dead-lettered on the first delivery"
    return letters


def test_the_payload_creates_its_file_when_it_is_loaded(tmp_path: Path) -> None:
    """The control: the tests below would see it, had a worker loaded the body."""
    evil = tmp_path / "control"
    pickle.loads(_evil_body(evil))
    assert evil.exists()


def test_a_tampered_signed_pickle_is_dead_lettered_unread(guarded: Petiole, tmp_path: Path) -> None:
    evil = tmp_path / "tampered"
    honest = _envelope(pickle.dumps([["harmless"], {}]))
    signed = honest.to_bytes(HmacSha256Signer(KEY.encode()))
    # Swap the body for the attacker's, keeping the signature.
    tampered = signed[: len(signed) - len(honest.body)] + _evil_body(evil)
    _publish(guarded, tampered, honest.task_id)
    with start_worker(guarded):
        (letter,) = _dead_letter_of(guarded)
    assert "not verified (signed by 'hmac-sha256')" in letter.reason
    assert "does not match" in letter.reason
    assert not evil.exists(), "the body was deserialized"


def test_an_unsigned_pickle_is_dead_lettered_unread_by_a_worker_requiring_signatures(
    guarded: Petiole, tmp_path: Path
) -> None:
    evil = tmp_path / "unsigned"
    envelope = _envelope(_evil_body(evil))
    _publish(guarded, envelope.to_bytes(), envelope.task_id)
    with start_worker(guarded):
        (letter,) = _dead_letter_of(guarded)
    assert "unsigned message (framing v1)" in letter.reason
    assert "require_signature" in letter.reason
    assert not evil.exists(), "the body was deserialized"


def test_a_pickle_signed_with_another_key_is_dead_lettered_unread(
    guarded: Petiole, tmp_path: Path
) -> None:
    evil = tmp_path / "other-key"
    envelope = _envelope(_evil_body(evil))
    forged = envelope.to_bytes(HmacSha256Signer(b"an attacker's own key, 32 bytes+"))
    _publish(guarded, forged, envelope.task_id)
    with start_worker(guarded):
        (letter,) = _dead_letter_of(guarded)
    assert "not verified" in letter.reason
    assert not evil.exists(), "the body was deserialized"


def test_an_unknown_content_encoding_is_dead_lettered_naming_the_codec(
    guarded: Petiole, tmp_path: Path
) -> None:
    evil = tmp_path / "made-up"
    envelope = _envelope(_evil_body(evil), encoding="x-made-up")
    _publish(guarded, envelope.to_bytes(guarded.signer()), envelope.task_id)
    with start_worker(guarded):
        (letter,) = _dead_letter_of(guarded)
    assert "content encoding 'x-made-up' cannot be decoded here" in letter.reason
    installed = "installed: bzip2, identity, lzma, zlib"
    assert f"no codec named 'x-made-up' is installed; {installed}" in letter.reason
    assert not evil.exists(), "the body was deserialized"


def test_a_zlib_bomb_is_dead_lettered_as_over_max_body_bytes(guarded: Petiole) -> None:
    guarded.configure(max_body_bytes=1 << 20)
    bomb = zlib.compress(b"[" * (64 << 20), 9)  # 64 MiB of JSON brackets, in ~64 KiB
    envelope = _envelope(bomb, content_type=JSON, encoding="zlib")
    _publish(guarded, envelope.to_bytes(guarded.signer()), envelope.task_id)
    with start_worker(guarded):
        (letter,) = _dead_letter_of(guarded)
    assert "undecodable body (application/json, zlib)" in letter.reason
    assert "decodes to more than 1048576 bytes (max_body_bytes)" in letter.reason


def test_corrupt_compressed_bodies_are_dead_lettered_as_undecodable(guarded: Petiole) -> None:
    truncated = zlib.compress(b'[["x"], {}]' * 100)[:-6]
    envelope = _envelope(truncated, content_type=JSON, encoding="zlib")
    _publish(guarded, envelope.to_bytes(guarded.signer()), envelope.task_id)
    with start_worker(guarded):
        (letter,) = _dead_letter_of(guarded)
    assert "undecodable body (application/json, zlib): truncated zlib body" in letter.reason


def test_the_worker_goes_on_running_signed_tasks_after_hostile_messages(
    guarded: Petiole, tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        envelope = _envelope(_evil_body(tmp_path / name))
        _publish(guarded, envelope.to_bytes(), envelope.task_id)
    with start_worker(guarded):
        _dead_letter_of(guarded, count=3)
        assert guarded.tasks["hostile.echo"].delay(1, "x").get(timeout=10) == [1, "x"]
    assert not list(tmp_path.iterdir())
