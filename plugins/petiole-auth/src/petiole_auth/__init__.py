"""petiole-auth: public-key message signing for Petiole — the ``ed25519`` signer
(raw Ed25519 keys) and the ``x509`` signer (RSA-PSS or Ed25519 keys named by
pinned X.509 certificates)."""

__version__ = "0.1.0"
