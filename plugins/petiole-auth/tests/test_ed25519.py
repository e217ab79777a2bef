"""The ed25519 signer: its signature layout, each reason it refuses a message, and
each way its key files can be wrong."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from petiole_auth.ed25519 import Ed25519Signer, create_ed25519_signer
from petiole_auth.testing import Pki

from petiole.envelope import Envelope, Frame, task_headers
from petiole.plugin_api import ConfigError, SignatureError
from petiole.stages import verify_frame

DATA = b"PET2\x00\x00\x00\x02{}payload"


def _build(**options: Any) -> Ed25519Signer:
    return create_ed25519_signer(SimpleNamespace(signer_options=options))


@pytest.fixture
def producer(pki: Pki) -> Ed25519Signer:
    pair = pki.key_pair("producer")
    return _build(private_key=str(pair.private), trusted_keys=str(pair.public))


def _frame(signer: Ed25519Signer) -> bytes:
    headers = task_headers(str(uuid.uuid4()), "proj.add", sent_at=time.time())
    return Envelope(headers, b"[[2, 3], {}]", "application/json").to_bytes(signer)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# -- what a signature is --------------------------------------------------------------


def test_a_signature_is_version_key_id_and_an_ed25519_signature(pki: Pki) -> None:
    pair = pki.key_pair("producer")
    signer = _build(private_key=str(pair.private))
    raw_public = pair.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = hashlib.sha256(raw_public).digest()[:8]

    signature = signer.sign(DATA)

    assert (len(signature), signature[0], signature[1:9]) == (73, 1, key_id)
    assert signer.key_id == key_id.hex()
    pair.key.public_key().verify(signature[9:], DATA)


def test_each_trusted_key_verifies_its_own_signatures(pki: Pki) -> None:
    a, b = pki.key_pair("a"), pki.key_pair("b")
    worker = _build(trusted_keys=str(pki.trust_store(a.public, b.public)))
    for pair in (a, b):
        worker.verify(DATA, _build(private_key=str(pair.private)).sign(DATA))


# -- refusals ---------------------------------------------------------------------------


def test_an_unknown_key_id_is_refused_naming_it(pki: Pki, producer: Ed25519Signer) -> None:
    stranger = _build(private_key=str(pki.key_pair("stranger").private))
    with pytest.raises(
        SignatureError, match=rf"unknown ed25519 key id {stranger.key_id}: .*1 trusted_keys"
    ):
        producer.verify(DATA, stranger.sign(DATA))


def test_a_tampered_body_is_a_bad_signature(producer: Ed25519Signer) -> None:
    payload = _frame(producer)
    with pytest.raises(SignatureError, match="bad ed25519 signature: it does not match"):
        verify_frame(
            Frame.parse(_flip(payload, len(payload) - 3)), producer, require_signature=True
        )


def test_a_tampered_header_is_a_bad_signature(producer: Ed25519Signer) -> None:
    payload = _frame(producer)
    at = payload.index(b"proj.add") + 5  # a byte of the task name, in the header block
    with pytest.raises(SignatureError, match="bad ed25519 signature"):
        verify_frame(Frame.parse(_flip(payload, at)), producer, require_signature=True)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s[:9], "9 bytes, too short"),
        (lambda s: s[:-1], "72 bytes, where an ed25519 signature is 73"),
        (lambda s: s + b"\x00", "74 bytes, where an ed25519 signature is 73"),
        (lambda s: b"\x02" + s[1:], "format version 2, but this petiole-auth reads version 1"),
    ],
)
def test_a_malformed_signature_is_refused_saying_how(
    producer: Ed25519Signer, change: Any, reason: str
) -> None:
    with pytest.raises(SignatureError, match=f"malformed ed25519 signature: {reason}"):
        producer.verify(DATA, change(producer.sign(DATA)))


def test_a_process_without_a_private_key_verifies_but_cannot_sign(
    pki: Pki, producer: Ed25519Signer
) -> None:
    worker = _build(trusted_keys=str(pki.directory / "producer.pub.pem"))
    worker.verify(DATA, producer.sign(DATA))
    assert "verify-only" in repr(worker)
    with pytest.raises(ConfigError, match=r"no private_key.*set signer_options.private_key"):
        worker.sign(DATA)


def test_keys_are_read_once_when_the_signer_is_built(pki: Pki) -> None:
    pair = pki.key_pair("producer")
    signer = _build(private_key=str(pair.private), trusted_keys=str(pair.public))
    pair.private.unlink()
    pair.public.unlink()
    signer.verify(DATA, signer.sign(DATA))


# -- key files ---------------------------------------------------------------------------


def test_no_key_at_all_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"needs signer_options: private_key .* and/or trusted_keys"
    ):
        _build()


def test_a_missing_key_file_names_the_option_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(
        ConfigError, match=rf"signer_options.private_key .*'{missing}' does not exist"
    ):
        _build(private_key=str(missing))


def test_an_rsa_private_key_is_the_wrong_type(
    pki: Pki, rsa_keys: tuple[rsa.RSAPrivateKey, ...]
) -> None:
    pair = pki.key_pair("rsa", rsa_keys[0])
    with pytest.raises(
        ConfigError, match=r"private_key .*rsa.key' holds an RSA-2048 key; .*Ed25519"
    ):
        _build(private_key=str(pair.private))


def test_an_rsa_public_key_is_the_wrong_type(
    pki: Pki, rsa_keys: tuple[rsa.RSAPrivateKey, ...]
) -> None:
    pair = pki.key_pair("rsa", rsa_keys[0])
    with pytest.raises(ConfigError, match=r"trusted_keys .*rsa.pub.pem' holds an RSA-2048 key"):
        _build(trusted_keys=str(pair.public))


def test_a_private_key_among_trusted_keys_is_refused_with_how_to_get_its_public_half(
    pki: Pki,
) -> None:
    pair = pki.key_pair("producer")
    with pytest.raises(
        ConfigError, match=r"found BEGIN PRIVATE KEY.*openssl pkey -in producer.key -pubout"
    ):
        _build(trusted_keys=str(pair.private))


def test_a_certificate_among_trusted_keys_points_to_the_x509_signer(pki: Pki) -> None:
    certificate = pki.certificate(pki.key_pair("producer"))
    with pytest.raises(ConfigError, match=r"found BEGIN CERTIFICATE.*x509 signer"):
        _build(trusted_keys=str(certificate))


def test_a_directory_of_trusted_keys_reads_its_pem_files_only(pki: Pki) -> None:
    a = pki.key_pair("a")
    store = pki.trust_store(a.public)
    (store / "README.txt").write_text("not a key")
    signer = _build(trusted_keys=str(store))
    signer.verify(DATA, _build(private_key=str(a.private)).sign(DATA))


def test_a_directory_without_keys_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trusted_keys .* is a directory with no \*.pem file"):
        _build(trusted_keys=str(tmp_path))


def test_an_empty_key_file_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"is not a PEM public key \(the file is empty"):
        _build(trusted_keys=str(empty))


def test_an_encrypted_private_key_is_read_with_its_passphrase(pki: Pki) -> None:
    pair = pki.key_pair("producer", passphrase=b"correct horse")
    signer = _build(private_key=str(pair.private), private_key_passphrase="correct horse")
    assert signer.key_id is not None
    assert "correct horse" not in repr(signer)


def test_an_encrypted_private_key_without_its_passphrase_names_the_options(pki: Pki) -> None:
    pair = pki.key_pair("producer", passphrase=b"correct horse")
    with pytest.raises(
        ConfigError, match="is encrypted; set private_key_passphrase or private_key_passphrase_file"
    ):
        _build(private_key=str(pair.private))
