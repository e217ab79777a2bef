"""The ``ed25519`` signer: raw Ed25519 keys, no certificates.

A producer signs with its private key; a worker verifies against the public
keys it trusts, picking the one the signature's key id names (see
:mod:`petiole_auth._wire`). Options (``signer_options``):

* ``private_key`` — a PEM (PKCS#8) Ed25519 private key: needed to sign, so by
  producers and by workers whose tasks send tasks; a worker that only verifies
  omits it;
* ``private_key_passphrase`` / ``private_key_passphrase_file`` — for an encrypted key;
* ``trusted_keys`` — PEM public key files, and directories of ``*.pem`` files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from petiole.plugin_api import ConfigError, SignatureError
from petiole_auth import _algorithms, _wire
from petiole_auth._options import PASSPHRASE, PASSPHRASE_FILE, SignerOptions, SignerSettings
from petiole_auth._pem import FileOption

NAME = "ed25519"
OPTIONS = ("private_key", PASSPHRASE, PASSPHRASE_FILE, "trusted_keys")
KEY_SUFFIXES = (".pem",)
SIGNATURE_BYTES = 1 + _wire.KEY_ID_BYTES + _algorithms.ED25519_SIGNATURE_BYTES


def key_id(key: Ed25519PublicKey) -> bytes:
    """The key id signatures by ``key`` carry (shown in hex: 16 digits)."""
    return _wire.key_id(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


class Ed25519Signer:
    """Signs with ``private_key`` (when given) and verifies against ``trusted_keys``."""

    name = NAME

    def __init__(
        self,
        private_key: Ed25519PrivateKey | None = None,
        trusted_keys: Iterable[Ed25519PublicKey] = (),
    ) -> None:
        self._private = private_key
        self._prefix = b""
        self.key_id: str | None = None
        if private_key is not None:
            own = key_id(private_key.public_key())
            self.key_id = own.hex()
            self._prefix = _wire.pack(own)
        self._trusted: Mapping[bytes, Ed25519PublicKey] = {key_id(k): k for k in trusted_keys}

    def __repr__(self) -> str:
        signs = f"key_id={self.key_id}" if self.key_id else "verify-only"
        return f"<{type(self).__name__} {signs} trusted_keys={len(self._trusted)}>"

    def sign(self, data: bytes) -> bytes:
        if self._private is None:
            raise ConfigError(
                f"the {NAME} signer has no private_key, so this process can verify messages "
                "but not send them; set signer_options.private_key"
            )
        return self._prefix + self._private.sign(data)

    def verify(self, data: bytes, signature: bytes) -> None:
        reference, raw = _wire.unpack(signature, signer=NAME, reference_bytes=_wire.KEY_ID_BYTES)
        if len(raw) != _algorithms.ED25519_SIGNATURE_BYTES:
            raise SignatureError(
                f"malformed {NAME} signature: {len(signature)} bytes, where an {NAME} "
                f"signature is {SIGNATURE_BYTES}"
            )
        key = self._trusted.get(reference)
        if key is None:
            raise SignatureError(
                f"unknown {NAME} key id {reference.hex()}: it is none of the "
                f"{len(self._trusted)} trusted_keys of this worker; to trust its signer, add "
                "its public key to signer_options.trusted_keys"
            )
        try:
            key.verify(raw, data)
        except InvalidSignature:
            raise SignatureError(
                f"bad {NAME} signature: it does not match the message for key id "
                f"{reference.hex()} (the message was changed after signing)"
            ) from None


def create_ed25519_signer(settings: SignerSettings) -> Ed25519Signer:
    """The factory ``petiole_signers`` registers as ``ed25519``: reads and checks every
    key file once; raises :class:`ConfigError` naming the option and the path."""
    options = SignerOptions(settings.signer_options, signer=NAME, valid=OPTIONS)
    private_path = options.path("private_key")
    trusted_paths = options.paths("trusted_keys")
    if private_path is None and not trusted_paths:
        raise ConfigError(
            f"the {NAME} signer needs signer_options: private_key (a PEM Ed25519 private key, "
            "to sign) and/or trusted_keys (PEM public keys or directories of them, to verify)"
        )
    private_key = None
    if private_path is not None:
        found = FileOption(NAME, "private_key").private_key(private_path, options.passphrase())
        if not isinstance(found, Ed25519PrivateKey):
            raise FileOption(NAME, "private_key").error(
                private_path,
                f"holds {_algorithms.describe(found)}; the {NAME} signer needs an Ed25519 key "
                "(`openssl genpkey -algorithm ed25519 -out KEY`), or use the x509 signer",
            )
        private_key = found
    trusted = FileOption(NAME, "trusted_keys")
    keys: list[Ed25519PublicKey] = []
    for path in trusted.files(trusted_paths, KEY_SUFFIXES):
        key = trusted.public_key(path)
        if not isinstance(key, Ed25519PublicKey):
            raise trusted.error(
                path, f"holds {_algorithms.describe(key)}; the {NAME} signer trusts Ed25519 keys"
            )
        keys.append(key)
    return Ed25519Signer(private_key, keys)
