"""Both signers end to end: a producer app and a worker app (in threads of this
process) sharing an in-memory broker and result store, the worker requiring
signatures and accepting pickle.

Each hostile message is dead-lettered on its first delivery with its reason, and
its body is never deserialized: the body is a pickle whose loading would create
a file, and the file never appears.
"""

from __future__ import annotations

import pickle
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from petiole_auth.ed25519 import Ed25519Signer
from petiole_auth.testing import DAY, Pki, UncheckedX509Signer

from petiole import Petiole, chain, signature
from petiole.envelope import PROTOCOL_VERSION, Envelope
from petiole.plugin_api import DeadLetter, Signer, wait_until
from petiole.testing.in_thread import start_worker

PICKLE = "application/x-python-pickle"


class _CreatesFile:
    """Unpickling this creates ``path``: the file exists only if a body was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def _evil_body(path: Path) -> bytes:
    return pickle.dumps([[_CreatesFile(path)], {}])


def _envelope(body: bytes) -> Envelope:
    headers = {
        "protocol": PROTOCOL_VERSION,
        "id": str(uuid.uuid4()),
        "task": "auth.echo",
        "sent_at": time.time(),
    }
    return Envelope(headers, body, PICKLE)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@dataclass
class Cluster:
    """A producer and a worker app on one in-memory store, and a stranger: a signer
    with valid credentials of its own that the worker does not trust."""

    name: str
    producer: Petiole
    worker: Petiole
    stranger: Signer

    def publish(self, envelope: Envelope, payload: bytes) -> None:
        self.producer.transport.publish("default", payload, message_id=envelope.task_id)

    def dead_letter(self) -> DeadLetter:
        """The one dead letter of the default queue, once the worker has refused it."""
        transport = self.worker.transport
        assert wait_until(lambda: len(transport.dead_letters("default")) >= 1, timeout_s=10)
        (letter,) = transport.dead_letters("default")
        assert letter.delivery_count == 1, "dead-lettered on its first delivery"
        return letter


def _app(role: str, store: str, signer: str, options: dict[str, Any]) -> Petiole:
    app = Petiole(
        role,
        broker=store,
        backend=store,
        config_file="/dev/null",
        signer=signer,
        signer_options=options,
        require_signature=True,
        accept_content=["json", "pickle"],
    )

    @app.task(name="auth.echo")
    def echo(*args: Any) -> Any:
        return list(args)

    @app.task(name="auth.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def _apps(
    signer: str, producer_options: dict[str, Any], worker_options: dict[str, Any]
) -> tuple[Petiole, Petiole]:
    store = f"memory://{uuid.uuid4().hex}"  # memory stores are process-wide by name
    return (
        _app("producer", store, signer, producer_options),
        _app("worker", store, signer, worker_options),
    )


def _x509_cluster(pki: Pki, rsa_keys: tuple[rsa.RSAPrivateKey, ...]) -> Cluster:
    web = pki.key_pair("web", rsa_keys[0])  # RSA-PSS
    web_crt = pki.certificate(web)
    node = pki.key_pair("node")  # Ed25519: the worker signs the next steps of chains
    node_crt = pki.certificate(node)
    stranger = pki.key_pair("stranger", rsa_keys[1])
    producer, worker = _apps(
        "x509",
        {"private_key": str(web.private), "certificate": str(web_crt)},
        {
            "private_key": str(node.private),
            "certificate": str(node_crt),
            "trusted_certificates": str(pki.trust_store(web_crt, node_crt)),
        },
    )
    return Cluster(
        "x509", producer, worker, UncheckedX509Signer(stranger, pki.certificate(stranger))
    )


def _ed25519_cluster(pki: Pki) -> Cluster:
    web, node, stranger = pki.key_pair("web"), pki.key_pair("node"), pki.key_pair("stranger")
    producer, worker = _apps(
        "ed25519",
        {"private_key": str(web.private)},
        {
            "private_key": str(node.private),
            "trusted_keys": [str(web.public), str(node.public)],
        },
    )
    assert isinstance(stranger.key, Ed25519PrivateKey)
    return Cluster("ed25519", producer, worker, Ed25519Signer(stranger.key))


@pytest.fixture(params=["ed25519", "x509"])
def cluster(
    request: pytest.FixtureRequest, pki: Pki, rsa_keys: tuple[rsa.RSAPrivateKey, ...]
) -> Iterator[Cluster]:
    built = _ed25519_cluster(pki) if request.param == "ed25519" else _x509_cluster(pki, rsa_keys)
    yield built
    built.producer.close()
    built.worker.close()


def test_the_payload_creates_its_file_when_it_is_loaded(tmp_path: Path) -> None:
    """The control: the tests below would see the file, had a worker loaded a body."""
    evil = tmp_path / "control"
    pickle.loads(_evil_body(evil))
    assert evil.exists()


def test_a_signed_task_runs(cluster: Cluster) -> None:
    with start_worker(cluster.worker):
        assert cluster.producer.send_task("auth.add", [2, 3]).get(timeout=10) == 5


def test_an_unsigned_message_is_dead_lettered_unread(cluster: Cluster, tmp_path: Path) -> None:
    evil = tmp_path / "unsigned"
    envelope = _envelope(_evil_body(evil))
    cluster.publish(envelope, envelope.to_bytes())
    with start_worker(cluster.worker):
        letter = cluster.dead_letter()
    assert "unsigned message (framing v1)" in letter.reason
    assert not evil.exists(), "the body was deserialized"


def test_a_signed_message_with_a_flipped_byte_is_dead_lettered_unread(
    cluster: Cluster, tmp_path: Path
) -> None:
    evil = tmp_path / "flipped"
    envelope = _envelope(_evil_body(evil))
    signed = envelope.to_bytes(cluster.producer.signer())
    flipped = _flip(signed, signed.index(b'"sent_at"') + 2)  # a byte of the header block
    cluster.publish(envelope, flipped)
    with start_worker(cluster.worker):
        letter = cluster.dead_letter()
    assert f"refused, not verified (signed by '{cluster.name}')" in letter.reason
    assert f"bad {cluster.name} signature: it does not match the message" in letter.reason
    assert not evil.exists(), "the body was deserialized"


def test_a_signed_message_with_another_body_is_dead_lettered_unread(
    cluster: Cluster, tmp_path: Path
) -> None:
    evil = tmp_path / "swapped"
    honest = _envelope(pickle.dumps([["harmless"], {}]))
    signed = honest.to_bytes(cluster.producer.signer())
    swapped = signed[: len(signed) - len(honest.body)] + _evil_body(evil)
    cluster.publish(honest, swapped)
    with start_worker(cluster.worker):
        letter = cluster.dead_letter()
    assert f"bad {cluster.name} signature" in letter.reason
    assert not evil.exists(), "the body was deserialized"


def test_a_message_from_an_untrusted_signer_is_dead_lettered_unread(
    cluster: Cluster, tmp_path: Path
) -> None:
    evil = tmp_path / "untrusted"
    envelope = _envelope(_evil_body(evil))
    cluster.publish(envelope, envelope.to_bytes(cluster.stranger))
    with start_worker(cluster.worker):
        letter = cluster.dead_letter()
    expected = {
        "ed25519": "unknown ed25519 key id",
        "x509": "which is not in this worker's trust store",
    }[cluster.name]
    assert expected in letter.reason
    assert not evil.exists(), "the body was deserialized"


def test_a_message_signed_by_an_expired_certificate_is_dead_lettered_unread(
    pki: Pki, tmp_path: Path
) -> None:
    now = datetime.now(timezone.utc)
    old = pki.key_pair("old")
    old_crt = pki.certificate(old, not_before=now - 30 * DAY, not_after=now - DAY)
    store = pki.trust_store(old_crt)  # still trusted: only its dates are wrong
    worker = _app(
        "worker", f"memory://{uuid.uuid4().hex}", "x509", {"trusted_certificates": str(store)}
    )
    evil = tmp_path / "expired"
    envelope = _envelope(_evil_body(evil))
    signed = envelope.to_bytes(UncheckedX509Signer(old, old_crt))
    worker.transport.publish("default", signed, message_id=envelope.task_id)
    with start_worker(worker):
        assert wait_until(lambda: len(worker.transport.dead_letters("default")) == 1, timeout_s=10)
    (letter,) = worker.transport.dead_letters("default")
    assert "signed with certificate 'CN=old'" in letter.reason
    assert f"expired on {(now - DAY).strftime('%Y-%m-%d %H:%M:%S UTC')}" in letter.reason
    assert not evil.exists(), "the body was deserialized"
    worker.close()


def test_a_signed_chain_runs_each_step_signed_by_whoever_sends_it(cluster: Cluster) -> None:
    steps = chain(
        signature("auth.add", (1, 2), app=cluster.producer),
        signature("auth.add", (10,), app=cluster.producer),
        signature("auth.add", (100,), app=cluster.producer),
    )
    with start_worker(cluster.worker):
        assert steps.apply_async().get(timeout=10) == 113


def test_a_chain_whose_signed_header_was_altered_is_refused(cluster: Cluster) -> None:
    result = chain(
        signature("auth.add", (1, 2), app=cluster.producer),
        signature("auth.add", (10,), app=cluster.producer),
    ).apply_async()
    transport = cluster.producer.transport
    (delivery,) = transport.reserve(["default"], max_messages=1, wait_s=1, lease_s=30)
    transport.ack(delivery)
    assert b'"args":[10]' in delivery.payload  # the next step, in the header block
    altered = delivery.payload.replace(b'"args":[10]', b'"args":[99]')
    transport.publish("default", altered, message_id=delivery.message_id)
    with start_worker(cluster.worker):
        letter = cluster.dead_letter()
        assert f"bad {cluster.name} signature" in letter.reason
        assert transport.size("default") == 0, "no step ran, so none sent the next"
    assert cluster.producer.backend.get(result.id) is None
