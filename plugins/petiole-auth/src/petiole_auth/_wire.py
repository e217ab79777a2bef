"""The signature slot's layout, the same for both signers::

    format version (1 byte, 1) | key reference | the algorithm's signature

The key reference tells the verifier which trusted key to use without trying
them all: for ``ed25519`` the key id (the first 8 bytes of the SHA-256 of the
32-byte raw public key), for ``x509`` the certificate's SHA-256 fingerprint
(32 bytes, of its DER encoding). It is not itself signed, and needs not be: a
reference changed in transit picks another trusted key (or none), under which
the signature does not verify.
"""

from __future__ import annotations

import hashlib

from petiole.plugin_api import SignatureError

FORMAT_VERSION = 1
_VERSION_BYTE = bytes((FORMAT_VERSION,))
KEY_ID_BYTES = 8
FINGERPRINT_BYTES = 32


def pack(reference: bytes) -> bytes:
    """The slot's prefix for a key: the algorithm's signature follows it."""
    return _VERSION_BYTE + reference


def unpack(signature: bytes, *, signer: str, reference_bytes: int) -> tuple[bytes, bytes]:
    """``(reference, algorithm signature)``; raises :class:`SignatureError` for a slot
    too short to hold them or of another format version."""
    if len(signature) <= 1 + reference_bytes:
        raise SignatureError(
            f"malformed {signer} signature: {len(signature)} bytes, too short for the format "
            f"version, a {reference_bytes}-byte key reference and a signature"
        )
    if signature[0] != FORMAT_VERSION:
        raise SignatureError(
            f"malformed {signer} signature: format version {signature[0]}, but this "
            f"petiole-auth reads version {FORMAT_VERSION} (is the producer's newer?)"
        )
    return signature[1 : 1 + reference_bytes], signature[1 + reference_bytes :]


def key_id(raw_public_key: bytes) -> bytes:
    """The ``ed25519`` key id of a 32-byte raw public key."""
    return hashlib.sha256(raw_public_key).digest()[:KEY_ID_BYTES]


def show_fingerprint(fingerprint: bytes) -> str:
    """As ``openssl x509 -noout -fingerprint -sha256`` prints it: ``AB:CD:...``."""
    return ":".join(f"{b:02X}" for b in fingerprint)
