"""Keys and certificates for tests, made with ``cryptography`` and written as PEM files.

For this plugin's tests and for an app's own: a key pair, a self-signed
certificate with the validity window a test needs (expired, not yet valid), and
a trust store directory::

    pki = Pki(tmp_path)
    web = pki.key_pair("web")                      # Ed25519, unless given a key
    web_crt = pki.certificate(web, days=30)
    old_crt = pki.certificate(web, name="old", not_after=datetime.now(timezone.utc) - DAY)
    store = pki.trust_store(web_crt, old_crt)
    expired = UncheckedX509Signer(web, old_crt)    # signs as the expired certificate

Ed25519 keys cost microseconds to make; RSA keys much more, so a test suite
makes its RSA keys once (``rsa.generate_private_key``) and hands them in.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID

from petiole_auth import _algorithms
from petiole_auth import x509 as x509_signer
from petiole_auth._certificates import PinnedCertificate

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A private key and where its PEM files are: ``private`` (PKCS#8) and ``public``."""

    key: CertificateIssuerPrivateKeyTypes
    private: Path
    public: Path


class Pki:
    """Makes key pairs, certificates and trust stores as files under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def key_pair(
        self,
        name: str,
        key: CertificateIssuerPrivateKeyTypes | None = None,
        *,
        passphrase: bytes | None = None,
    ) -> KeyPair:
        """``key`` (a new Ed25519 key when None) as ``NAME.key`` and ``NAME.pub.pem``,
        the private key encrypted with ``passphrase`` when given."""
        key = key if key is not None else ed25519.Ed25519PrivateKey.generate()
        encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
        private = self.directory / f"{name}.key"
        private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption))
        public = self.directory / f"{name}.pub.pem"
        public.write_bytes(
            key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
        return KeyPair(key, private, public)

    def certificate(
        self,
        pair: KeyPair,
        *,
        name: str | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        days: float = 30,
    ) -> Path:
        """A self-signed certificate of ``pair``'s key, as ``NAME.crt`` (the key's name by
        default), subject ``CN=NAME``, valid from an hour ago for ``days`` unless
        ``not_before`` / ``not_after`` say otherwise."""
        name = name or pair.private.name.removesuffix(".key")
        start = not_before or datetime.now(timezone.utc) - timedelta(hours=1)
        end = not_after or start + timedelta(days=days)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        algorithm = None if isinstance(pair.key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(pair.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .sign(pair.key, algorithm)
        )
        path = self.directory / f"{name}.crt"
        path.write_bytes(certificate.public_bytes(Encoding.PEM))
        return path

    def trust_store(self, *certificates: Path, name: str = "trusted") -> Path:
        """A directory ``NAME`` holding copies of ``certificates`` (or public keys)."""
        store = self.directory / name
        store.mkdir(exist_ok=True)
        for path in certificates:
            shutil.copy(path, store / path.name)
        return store


class UncheckedX509Signer:
    """Signs as the ``x509`` signer does with ``pair``'s key and ``certificate``, but
    checks none of its dates: it makes the messages an expired (or not yet valid)
    certificate signed, which the ``x509`` signer itself refuses to make."""

    name = x509_signer.NAME

    def __init__(self, pair: KeyPair, certificate: Path) -> None:
        sign, _ = _algorithms.signer(pair.key)
        pinned = PinnedCertificate.of(
            x509.load_pem_x509_certificate(certificate.read_bytes()), str(certificate)
        )
        self._key = x509_signer.CertifiedKey(sign, pinned)

    def sign(self, data: bytes) -> bytes:
        return self._key.signature(data)


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A new RSA key (slow: make them once per test session)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)
