"""The ``x509`` signer: keys named by pinned X.509 certificates, Celery's ``auth`` model.

A producer signs with its private key (RSA, with PSS padding and SHA-256; or
Ed25519) and names its certificate by SHA-256 fingerprint in the signature. A
worker verifies only against the certificates in its trust store: it looks the
fingerprint up, refuses a certificate outside its validity window at that
moment, then checks the signature with the certificate's public key.

Certificates are **pinned**: each trusted certificate is listed itself, and no
chain is walked to a CA. That is Celery's model (``security_cert_store``), and
it keeps the question "whose messages run here?" answered by one directory:
trusting a signer is copying its certificate in, and revoking it is deleting
the file (and restarting the workers).

Options (``signer_options``):

* ``private_key`` and ``certificate`` — PEM files: the key to sign with and its
  certificate (the first one in the file). Both or neither: a worker that only
  verifies omits them.
* ``private_key_passphrase`` / ``private_key_passphrase_file`` — for an encrypted key;
* ``trusted_certificates`` — PEM certificate files (each may hold several), and
  directories of ``*.pem`` / ``*.crt`` files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from petiole.plugin_api import ConfigError, SignatureError
from petiole_auth import _algorithms, _wire
from petiole_auth._certificates import PinnedCertificate
from petiole_auth._options import PASSPHRASE, PASSPHRASE_FILE, SignerOptions, SignerSettings
from petiole_auth._pem import FileOption

NAME = "x509"
OPTIONS = ("private_key", "certificate", PASSPHRASE, PASSPHRASE_FILE, "trusted_certificates")
CERTIFICATE_SUFFIXES = (".pem", ".crt")

logger = logging.getLogger("petiole.auth")


class CertifiedKey:
    """A private key and its certificate: makes the signature slot (fingerprint and
    signature), checking nothing about the certificate's dates."""

    def __init__(self, sign: _algorithms.Sign, certificate: PinnedCertificate) -> None:
        self._sign = sign
        self._prefix = _wire.pack(certificate.fingerprint)
        self.certificate = certificate

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.certificate.describe()}>"

    def signature(self, data: bytes) -> bytes:
        return self._prefix + self._sign(data)


class X509Signer:
    """Signs as ``identity`` (when given), verifies against the ``trusted`` certificates."""

    name = NAME

    def __init__(self, identity: CertifiedKey | None, trusted: Iterable[PinnedCertificate]) -> None:
        self.identity = identity
        self._trusted: Mapping[bytes, PinnedCertificate] = {c.fingerprint: c for c in trusted}

    def __repr__(self) -> str:
        signs = self.identity.certificate.describe() if self.identity else "verify-only"
        return f"<{type(self).__name__} {signs} trusted_certificates={len(self._trusted)}>"

    def sign(self, data: bytes) -> bytes:
        identity = self.identity
        if identity is None:
            raise ConfigError(
                f"the {NAME} signer has no private_key and certificate, so this process can "
                "verify messages but not send them; set both in signer_options"
            )
        # A certificate that expired while this process ran: every worker would refuse
        # what it signs, so the sender learns it now, not the dead-letter store later.
        problem = identity.certificate.validity_problem(time.time())
        if problem is not None:
            raise ConfigError(
                f"cannot sign: the {NAME} signer's {problem}; renew it "
                f"({identity.certificate.source}) and restart"
            )
        return identity.signature(data)

    def verify(self, data: bytes, signature: bytes) -> None:
        fingerprint, raw = _wire.unpack(
            signature, signer=NAME, reference_bytes=_wire.FINGERPRINT_BYTES
        )
        certificate = self._trusted.get(fingerprint)
        if certificate is None:
            raise SignatureError(
                f"signed with certificate SHA-256 {_wire.show_fingerprint(fingerprint)}, which "
                f"is not in this worker's trust store ({len(self._trusted)} "
                "trusted_certificates); to trust its signer, add its certificate there"
            )
        problem = certificate.validity_problem(time.time())
        if problem is not None:
            raise SignatureError(f"signed with {problem}")
        if len(raw) != certificate.key.signature_bytes:
            raise SignatureError(
                f"malformed {NAME} signature: {len(raw)} signature bytes, where "
                f"{certificate.key.description} signatures are {certificate.key.signature_bytes}"
            )
        try:
            certificate.key.verify(raw, data)
        except InvalidSignature:
            raise SignatureError(
                f"bad {NAME} signature: it does not match the message for "
                f"{certificate.describe()} (the message was changed after signing)"
            ) from None


def create_x509_signer(settings: SignerSettings) -> X509Signer:
    """The factory ``petiole_signers`` registers as ``x509``: reads and checks every
    file once; raises :class:`ConfigError` naming the option and the path."""
    options = SignerOptions(settings.signer_options, signer=NAME, valid=OPTIONS)
    key_path, certificate_path = options.path("private_key"), options.path("certificate")
    trusted_paths = options.paths("trusted_certificates")
    if (key_path is None) != (certificate_path is None):
        given, missing = (
            ("private_key", "certificate") if key_path else ("certificate", "private_key")
        )
        raise ConfigError(
            f"signer_options of the {NAME} signer sets {given} but not {missing}: a producer "
            "needs both (its key and the certificate workers trust it by), a worker that "
            "only verifies neither"
        )
    if key_path is None and not trusted_paths:
        raise ConfigError(
            f"the {NAME} signer needs signer_options: private_key and certificate (to sign) "
            "and/or trusted_certificates (certificate files or directories of them, to verify)"
        )
    identity = None
    if key_path is not None and certificate_path is not None:
        identity = _identity(key_path, certificate_path, options.passphrase())
    return X509Signer(identity, _trust_store(trusted_paths))


def _identity(key_path: Path, certificate_path: Path, passphrase: bytes | None) -> CertifiedKey:
    """The producer's key and certificate: of a supported type, matching, valid now."""
    key_file, certificate_file = FileOption(NAME, "private_key"), FileOption(NAME, "certificate")
    private_key = key_file.private_key(key_path, passphrase)
    try:
        sign, public_key = _algorithms.signer(private_key)
    except _algorithms.UnsupportedKey as exc:
        raise key_file.error(key_path, f"holds {exc}; use {_algorithms.SUPPORTED}") from None
    # The first certificate of the file: a file holding a chain starts with its leaf.
    leaf = certificate_file.certificates(certificate_path)[0]
    certificate = _pinned(certificate_file, certificate_path, leaf)
    if certificate.key.spki != public_key.spki:
        raise ConfigError(
            f"signer_options of the {NAME} signer: the private_key {str(key_path)!r} does not "
            f"match the certificate {str(certificate_path)!r} ({certificate.describe()}); "
            "give the certificate issued for that key"
        )
    problem = certificate.validity_problem(time.time())
    if problem is not None:
        raise certificate_file.error(
            certificate_path,
            f"holds {problem}: workers would refuse every message signed with it; "
            "renew it and restart",
        )
    return CertifiedKey(sign, certificate)


def _trust_store(paths: tuple[Path, ...]) -> list[PinnedCertificate]:
    store = FileOption(NAME, "trusted_certificates")
    trusted: list[PinnedCertificate] = []
    now = time.time()
    for path in store.files(paths, CERTIFICATE_SUFFIXES):
        for found in store.certificates(path):
            certificate = _pinned(store, path, found)
            problem = certificate.validity_problem(now)
            if problem is not None:
                # Kept (a store holds old and new certificates while keys rotate), and
                # refused at verification while outside its window: said once, here.
                logger.warning("trust store file %s: %s", path, problem)
            trusted.append(certificate)
    return trusted


def _pinned(option: FileOption, path: Path, certificate: x509.Certificate) -> PinnedCertificate:
    try:
        return PinnedCertificate.of(certificate, str(path))
    except _algorithms.UnsupportedKey as exc:
        subject = certificate.subject.rfc4514_string()
        raise option.error(
            path, f"holds a certificate ({subject!r}) for {exc}; use {_algorithms.SUPPORTED}"
        ) from None
