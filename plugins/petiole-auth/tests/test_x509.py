"""The x509 signer: its signature layout and algorithms, the trust store, validity
windows, each reason it refuses a message, and each way its files can be wrong."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from petiole_auth.testing import DAY, KeyPair, Pki, UncheckedX509Signer
from petiole_auth.x509 import X509Signer, create_x509_signer

from petiole.envelope import Envelope, Frame, task_headers
from petiole.plugin_api import ConfigError, SignatureError
from petiole.stages import verify_frame

DATA = b"PET2\x00\x00\x00\x02{}payload"
NOW = datetime.now(timezone.utc)


def _build(**options: Any) -> X509Signer:
    return create_x509_signer(SimpleNamespace(signer_options=options))


def _producer(pair: KeyPair, certificate: Path, store: Path | None = None) -> X509Signer:
    options = {"private_key": str(pair.private), "certificate": str(certificate)}
    if store is not None:
        options["trusted_certificates"] = str(store)
    return _build(**options)


def _fingerprint(path: Path) -> str:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return ":".join(f"{b:02X}" for b in certificate.fingerprint(hashes.SHA256()))


def _frame(signer: X509Signer) -> bytes:
    headers = task_headers(str(uuid.uuid4()), "proj.add", sent_at=time.time())
    return Envelope(headers, b"[[2, 3], {}]", "application/json").to_bytes(signer)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.fixture
def web(pki: Pki, rsa_keys: tuple[rsa.RSAPrivateKey, ...]) -> KeyPair:
    return pki.key_pair("web", rsa_keys[0])


@pytest.fixture
def web_crt(pki: Pki, web: KeyPair) -> Path:
    return pki.certificate(web)


@pytest.fixture
def worker(pki: Pki, web_crt: Path) -> X509Signer:
    """Verify-only, trusting the web certificate."""
    return _build(trusted_certificates=str(pki.trust_store(web_crt)))


# -- what a signature is --------------------------------------------------------------


def test_an_rsa_signature_is_version_fingerprint_and_rsa_pss_sha256(
    web: KeyPair, web_crt: Path
) -> None:
    certificate = x509.load_pem_x509_certificate(web_crt.read_bytes())

    signature = _producer(web, web_crt).sign(DATA)

    assert (len(signature), signature[0]) == (1 + 32 + 256, 1)
    assert signature[1:33] == certificate.fingerprint(hashes.SHA256())
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature[33:], DATA, pss, hashes.SHA256())


def test_an_ed25519_certificate_signs_with_ed25519(pki: Pki) -> None:
    pair = pki.key_pair("edge")
    certificate = pki.certificate(pair)
    signature = _producer(pair, certificate).sign(DATA)
    assert len(signature) == 1 + 32 + 64
    pair.key.public_key().verify(signature[33:], DATA)


def test_a_verify_only_worker_accepts_a_trusted_producer(
    web: KeyPair, web_crt: Path, worker: X509Signer
) -> None:
    worker.verify(DATA, _producer(web, web_crt).sign(DATA))
    assert "verify-only" in repr(worker)
    with pytest.raises(ConfigError, match=r"no private_key and certificate.*set both"):
        worker.sign(DATA)


def test_a_store_with_old_and_new_certificates_accepts_both_while_keys_rotate(
    pki: Pki, web: KeyPair, web_crt: Path
) -> None:
    new = pki.key_pair("web-2026")
    new_crt = pki.certificate(new)
    worker = _build(trusted_certificates=str(pki.trust_store(web_crt, new_crt)))
    worker.verify(DATA, _producer(web, web_crt).sign(DATA))
    worker.verify(DATA, _producer(new, new_crt).sign(DATA))


def test_a_pem_bundle_trusts_every_certificate_in_it(pki: Pki, web: KeyPair, web_crt: Path) -> None:
    other = pki.key_pair("other")
    bundle = pki.directory / "bundle.pem"
    bundle.write_bytes(pki.certificate(other).read_bytes() + web_crt.read_bytes())
    worker = _build(trusted_certificates=[str(bundle)])
    worker.verify(DATA, _producer(web, web_crt).sign(DATA))
    worker.verify(DATA, _producer(other, pki.directory / "other.crt").sign(DATA))


def test_a_store_directory_reads_pem_and_crt_files_only(
    pki: Pki, web: KeyPair, web_crt: Path
) -> None:
    store = pki.trust_store(web_crt)
    (store / "web.crt").rename(store / "web.pem")
    (store / "notes.txt").write_text("not a certificate")
    _build(trusted_certificates=str(store)).verify(DATA, _producer(web, web_crt).sign(DATA))


def test_certificates_are_read_once_when_the_signer_is_built(
    pki: Pki, web: KeyPair, web_crt: Path
) -> None:
    store = pki.trust_store(web_crt)
    signer = _producer(web, web_crt, store)
    for path in (web.private, web_crt, store / web_crt.name):
        path.unlink()
    signer.verify(DATA, signer.sign(DATA))


# -- refusals ---------------------------------------------------------------------------


def test_an_untrusted_signer_is_refused_naming_its_fingerprint(
    pki: Pki, worker: X509Signer
) -> None:
    stranger = pki.key_pair("stranger")
    stranger_crt = pki.certificate(stranger)  # valid, just not in the store
    with pytest.raises(SignatureError) as info:
        worker.verify(DATA, _producer(stranger, stranger_crt).sign(DATA))
    fingerprint = _fingerprint(stranger_crt)
    assert f"certificate SHA-256 {fingerprint}, which is not in this worker's trust" in str(
        info.value
    )


def test_an_expired_certificate_is_refused_with_its_dates(pki: Pki) -> None:
    old = pki.key_pair("old")
    old_crt = pki.certificate(old, not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    worker = _build(trusted_certificates=str(pki.trust_store(old_crt)))
    expiry = (NOW - DAY).strftime("%Y-%m-%d %H:%M:%S UTC")
    start = (NOW - 30 * DAY).strftime("%Y-%m-%d %H:%M:%S UTC")
    with pytest.raises(SignatureError) as info:
        worker.verify(DATA, UncheckedX509Signer(old, old_crt).sign(DATA))
    assert f"certificate 'CN=old' (SHA-256 {_fingerprint(old_crt)}) expired on {expiry}" in str(
        info.value
    )
    assert f"(valid from {start} to {expiry})" in str(info.value)


def test_a_certificate_not_valid_yet_is_refused_with_its_dates(pki: Pki) -> None:
    early = pki.key_pair("early")
    early_crt = pki.certificate(early, not_before=NOW + DAY, days=30)
    worker = _build(trusted_certificates=str(pki.trust_store(early_crt)))
    start = (NOW + DAY).strftime("%Y-%m-%d %H:%M:%S UTC")
    with pytest.raises(
        SignatureError,
        match=f"'CN=early' .* is not valid yet .valid from {start} to .*check the clocks",
    ):
        worker.verify(DATA, UncheckedX509Signer(early, early_crt).sign(DATA))


def test_an_expired_certificate_in_the_store_is_kept_and_logged(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    old_crt = pki.certificate(pki.key_pair("old"), not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    with caplog.at_level(logging.WARNING, logger="petiole.auth"):
        _build(trusted_certificates=str(pki.trust_store(old_crt)))
    assert "'CN=old'" in caplog.text
    assert "expired on" in caplog.text


def test_a_tampered_body_is_a_bad_signature(
    web: KeyPair, web_crt: Path, worker: X509Signer
) -> None:
    payload = _frame(_producer(web, web_crt))
    with pytest.raises(
        SignatureError,
        match="bad x509 signature: it does not match the message for certificate 'CN=web'",
    ):
        verify_frame(Frame.parse(_flip(payload, len(payload) - 3)), worker, require_signature=True)


def test_a_tampered_header_is_a_bad_signature(
    web: KeyPair, web_crt: Path, worker: X509Signer
) -> None:
    payload = _frame(_producer(web, web_crt))
    at = payload.index(b"proj.add") + 5
    with pytest.raises(SignatureError, match="bad x509 signature"):
        verify_frame(Frame.parse(_flip(payload, at)), worker, require_signature=True)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s[:33], "33 bytes, too short for the format version, a 32-byte key reference"),
        (lambda s: s[:-1], "255 signature bytes, where RSA-2048 signatures are 256"),
        (lambda s: b"\x07" + s[1:], "format version 7, but this petiole-auth reads version 1"),
    ],
)
def test_a_malformed_signature_is_refused_saying_how(
    web: KeyPair, web_crt: Path, worker: X509Signer, change: Any, reason: str
) -> None:
    with pytest.raises(SignatureError, match=f"malformed x509 signature: {reason}"):
        worker.verify(DATA, change(_producer(web, web_crt).sign(DATA)))


# -- the producer's own key and certificate ----------------------------------------------


def test_a_producer_with_an_expired_certificate_fails_at_start_naming_it(pki: Pki) -> None:
    old = pki.key_pair("old")
    old_crt = pki.certificate(old, not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    with pytest.raises(
        ConfigError,
        match=rf"certificate .*'{old_crt}' holds certificate 'CN=old' .* expired on .*renew it",
    ):
        _producer(old, old_crt)


def test_a_producer_with_a_certificate_not_valid_yet_fails_at_start(pki: Pki) -> None:
    early = pki.key_pair("early")
    early_crt = pki.certificate(early, not_before=NOW + DAY)
    with pytest.raises(
        ConfigError, match=rf"'{early_crt}' holds certificate 'CN=early' .* is not valid yet"
    ):
        _producer(early, early_crt)


def test_a_producer_whose_certificate_expires_while_running_cannot_sign(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = pki.key_pair("web")
    signer = _producer(pair, pki.certificate(pair, days=1))
    later = time.time() + 2 * DAY.total_seconds()
    monkeypatch.setattr("petiole_auth.x509.time.time", lambda: later)
    with pytest.raises(
        ConfigError, match=r"cannot sign: .*'CN=web' .* expired on .*renew it .*web.crt"
    ):
        signer.sign(DATA)


def test_a_key_that_does_not_match_its_certificate_names_both_files(pki: Pki, web: KeyPair) -> None:
    other_crt = pki.certificate(pki.key_pair("other"))
    with pytest.raises(
        ConfigError,
        match=rf"private_key '{web.private}' does not match the certificate '{other_crt}'",
    ):
        _producer(web, other_crt)


@pytest.mark.parametrize("given", ["private_key", "certificate"])
def test_a_key_without_a_certificate_or_the_reverse_is_refused(
    web: KeyPair, web_crt: Path, given: str
) -> None:
    path = {"private_key": web.private, "certificate": web_crt}[given]
    with pytest.raises(ConfigError, match=f"sets {given} but not"):
        _build(**{given: str(path)})


def test_no_options_at_all_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs signer_options: private_key and certificate"):
        _build()


def test_an_ec_key_is_the_wrong_type(pki: Pki) -> None:
    pair = pki.key_pair("ec", ec.generate_private_key(ec.SECP256R1()))
    certificate = pki.certificate(pair)
    with pytest.raises(
        ConfigError, match=r"private_key .*ec.key' holds an EC secp256r1 key; use RSA"
    ):
        _producer(pair, certificate)
    with pytest.raises(
        ConfigError,
        match=r"trusted_certificates .*ec.crt' holds a certificate \('CN=ec'\) for an EC secp256r1",
    ):
        _build(trusted_certificates=str(certificate))


def test_a_small_rsa_key_is_refused(pki: Pki) -> None:
    pair = pki.key_pair("small", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(ConfigError, match="holds an RSA-1024 key, smaller than 2048 bits"):
        _producer(pair, pki.certificate(pair))


def test_a_missing_trust_store_names_the_option_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "trusted"
    with pytest.raises(
        ConfigError,
        match=rf"signer_options.trusted_certificates of the x509 signer: '{missing}' does not",
    ):
        _build(trusted_certificates=str(missing))


def test_a_key_given_as_a_certificate_is_refused(web: KeyPair) -> None:
    with pytest.raises(ConfigError, match=r"holds no PEM certificate \(found BEGIN PRIVATE KEY"):
        _build(trusted_certificates=str(web.private))


def test_an_encrypted_key_reads_with_a_passphrase_file(pki: Pki, tmp_path: Path) -> None:
    pair = pki.key_pair("web", passphrase=b"s3cret-phrase")
    secret = tmp_path / "passphrase"
    secret.write_text("s3cret-phrase\n")
    signer = _build(
        private_key=str(pair.private),
        certificate=str(pki.certificate(pair)),
        private_key_passphrase_file=str(secret),
    )
    assert signer.identity is not None


def test_a_wrong_passphrase_is_refused_and_never_shown(pki: Pki) -> None:
    pair = pki.key_pair("web", passphrase=b"s3cret-phrase")
    with pytest.raises(ConfigError) as info:
        _build(
            private_key=str(pair.private),
            certificate=str(pki.certificate(pair)),
            private_key_passphrase="wrong-phrase",
        )
    assert "cannot be decrypted with the passphrase given" in str(info.value)
    assert "wrong-phrase" not in str(info.value)


def test_the_signers_repr_names_its_certificate_and_no_secret(pki: Pki) -> None:
    pair = pki.key_pair("web", passphrase=b"s3cret-phrase")
    signer = _build(
        private_key=str(pair.private),
        certificate=str(pki.certificate(pair)),
        private_key_passphrase="s3cret-phrase",
    )
    assert "'CN=web'" in repr(signer)
    assert "s3cret" not in repr(signer)
    assert "s3cret" not in repr(signer.identity)
