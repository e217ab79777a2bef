"""The signature algorithms, chosen by key type: RSA with PSS padding and SHA-256
(MGF1 with SHA-256, a salt as long as the digest), and Ed25519.

Each key is wrapped once, when a signer is built, into plain callables, so
signing and verifying a message costs the cryptographic operation and nothing
else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# 2048 bits is NIST's floor for RSA signatures until 2030; smaller keys are refused.
MIN_RSA_BITS = 2048
ED25519_SIGNATURE_BYTES = 64
SUPPORTED = f"RSA of {MIN_RSA_BITS} bits or more (signed with PSS and SHA-256), or Ed25519"

_SHA256 = hashes.SHA256()
# A salt as long as the digest is what TLS 1.3 uses and what most verifiers expect.
_PSS = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=padding.PSS.DIGEST_LENGTH)

Sign = Callable[[bytes], bytes]
"""``sign(data) -> signature``."""
Verify = Callable[[bytes, bytes], None]
"""``verify(signature, data)``; raises :class:`cryptography.exceptions.InvalidSignature`."""


class UnsupportedKey(ValueError):
    """A key of a type or size no signer here uses; its message describes the key."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A public key ready to verify: its algorithm's ``verify``, the exact length of
    its signatures, and its SubjectPublicKeyInfo (DER) to compare keys by."""

    verify: Verify
    signature_bytes: int
    spki: bytes
    description: str


def public_key(key: PublicKeyTypes) -> PublicKey:
    """Wrap ``key``; raises :class:`UnsupportedKey` unless it is RSA (big enough) or Ed25519."""
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return PublicKey(_verify_ed25519(key), ED25519_SIGNATURE_BYTES, spki, "Ed25519")
    if isinstance(key, rsa.RSAPublicKey):
        _check_rsa_size(key.key_size)
        return PublicKey(_verify_rsa_pss(key), (key.key_size + 7) // 8, spki, _rsa(key.key_size))
    raise UnsupportedKey(describe(key))


def signer(key: PrivateKeyTypes) -> tuple[Sign, PublicKey]:
    """The signing function of ``key`` and its public half; raises :class:`UnsupportedKey`."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign, public_key(key.public_key())
    if isinstance(key, rsa.RSAPrivateKey):
        _check_rsa_size(key.key_size)
        return _sign_rsa_pss(key), public_key(key.public_key())
    raise UnsupportedKey(describe(key))


def describe(key: PrivateKeyTypes | PublicKeyTypes) -> str:
    """``an RSA-1024 key``, ``an EC secp256r1 key``: for errors about a key's type."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"an {_rsa(key.key_size)} key"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"an EC {key.curve.name} key"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "an Ed25519 key"
    kind = type(key).__name__.replace("PrivateKey", "").replace("PublicKey", "").lstrip("_")
    return f"a {kind} key"


def _rsa(bits: int) -> str:
    return f"RSA-{bits}"


def _check_rsa_size(bits: int) -> None:
    if bits < MIN_RSA_BITS:
        raise UnsupportedKey(f"an {_rsa(bits)} key, smaller than {MIN_RSA_BITS} bits")


def _verify_ed25519(key: ed25519.Ed25519PublicKey) -> Verify:
    return key.verify


def _verify_rsa_pss(key: rsa.RSAPublicKey) -> Verify:
    def verify(signature: bytes, data: bytes) -> None:
        key.verify(signature, data, _PSS, _SHA256)

    return verify


def _sign_rsa_pss(key: rsa.RSAPrivateKey) -> Sign:
    def sign(data: bytes) -> bytes:
        return key.sign(data, _PSS, _SHA256)

    return sign
