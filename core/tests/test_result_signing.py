"""Signed results (``sign_results``): a client reads only what a worker signed."""

from __future__ import annotations

import dataclasses
import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest

from petiole import Petiole, states
from petiole.backend import ResultRecord
from petiole.errors import ConfigError, SignatureError
from petiole.result import GroupResult
from petiole.result_signing import SIGNATURE_META, SIGNER_META
from petiole.testing.in_thread import start_worker

KEY = "a-result-signing-key-of-32-bytes-or-more"
OTHER_KEY = "another-signing-key-of-32-bytes-or-more!"


@pytest.fixture
def app(app: Petiole) -> Petiole:
    app.configure(signer="hmac-sha256", signing_key=KEY, sign_results=True)
    return app


def _add(app: Petiole) -> Any:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    return add


def _signed_result(app: Petiole) -> ResultRecord:
    """The record a worker stored, signed, for ``add(2, 3)``."""
    add = _add(app)
    with start_worker(app):
        result = add.delay(2, 3)
        assert result.get(timeout=10) == 5
    signed = app.backend.get(result.id)
    assert signed is not None
    return signed


def _client(app: Petiole, **settings: Any) -> Petiole:
    """Another app on the same stores: a client configured its own way."""
    return Petiole(
        "client",
        broker=app.settings.broker_url,
        backend=app.settings.backend_url,
        config_file="/dev/null",
        signer="hmac-sha256",
        **settings,
    )


class _CreatesFile:
    """Unpickled, it creates ``path``: proof a payload was deserialized."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def test_a_worker_signs_what_it_stores_and_the_client_reads_it(app: Petiole) -> None:
    stored = _signed_result(app)
    assert stored.meta[SIGNER_META] == "hmac-sha256"
    assert stored.meta[SIGNATURE_META]


def test_a_forged_unsigned_result_is_refused(app: Petiole) -> None:
    task_id = str(uuid.uuid4())
    app.backend.store(
        ResultRecord(task_id, states.SUCCESS, b"42", "application/json", date_done=1.0),
        ttl_s=None,
    )
    with pytest.raises(SignatureError, match="unsigned and sign_results is set"):
        app.AsyncResult(task_id).get(timeout=1)


def test_an_altered_payload_is_refused_before_it_is_deserialized(
    app: Petiole, tmp_path: Path
) -> None:
    app.configure(result_accept_content=["json", "pickle"])
    signed = _signed_result(app)
    evil = tmp_path / "unpickled"
    payload = pickle.dumps(_CreatesFile(evil))
    forged = dataclasses.replace(
        signed, payload=payload, content_type="application/x-python-pickle"
    )
    app.backend.store(forged, ttl_s=None)

    with pytest.raises(SignatureError, match=f"the result of task {signed.task_id} is refused"):
        app.AsyncResult(signed.task_id).get(timeout=1)
    assert not evil.exists(), "the forged payload was deserialized"


def test_a_result_moved_to_another_task_is_refused(app: Petiole) -> None:
    signed = _signed_result(app)
    other = str(uuid.uuid4())
    app.backend.store(dataclasses.replace(signed, task_id=other), ttl_s=None)
    with pytest.raises(SignatureError):
        app.AsyncResult(other).get(timeout=1)


def test_a_state_forged_without_a_payload_is_refused(app: Petiole) -> None:
    signed = _signed_result(app)
    app.backend.store(dataclasses.replace(signed, payload=b""), ttl_s=None)
    with pytest.raises(SignatureError):
        app.AsyncResult(signed.task_id).get(timeout=1)


def test_a_client_with_another_key_refuses_the_result(app: Petiole) -> None:
    signed = _signed_result(app)
    client = _client(app, signing_key=OTHER_KEY, sign_results=True)
    with pytest.raises(SignatureError, match="does not match"):
        client.AsyncResult(signed.task_id).get(timeout=1)
    client.close()


def test_a_client_with_a_signer_verifies_signed_results_even_without_sign_results(
    app: Petiole,
) -> None:
    signed = _signed_result(app)
    app.backend.store(dataclasses.replace(signed, payload=b"6"), ttl_s=None)
    client = _client(app, signing_key=KEY)
    with pytest.raises(SignatureError):
        client.AsyncResult(signed.task_id).get(timeout=1)
    client.close()


def test_failures_revocations_and_saved_groups_are_signed_too(app: Petiole) -> None:
    @app.task
    def fail() -> None:
        raise ValueError("no")

    with start_worker(app):
        failed = fail.delay()
        with pytest.raises(ValueError, match="no"):
            failed.get(timeout=10)
    app.revoke(revoked := str(uuid.uuid4()))
    group = GroupResult(str(uuid.uuid4()), [failed], app)
    group.save()
    for task_id in (failed.id, revoked, group.id):
        stored = app.backend.get(task_id)
        assert stored is not None
        assert SIGNATURE_META in stored.meta
    assert [r.id for r in GroupResult.restore(group.id, app).results] == [failed.id]


def test_sign_results_without_a_signer_fails_the_apps_first_use(app: Petiole) -> None:
    app.configure(signer=None, signing_key=None)
    with pytest.raises(ConfigError, match="sign_results is set but no signer is"):
        app.send_task("t", [1])
