"""The signers measured, each built by its factory through an app's plugin
registry (``app.signer()``) from the settings a deployment would write; keys
and certificates are made by ``petiole_auth.testing.Pki`` (petiole-auth)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from petiole import Petiole
from petiole.stages import Signer

RSA_BITS = 3072


def app(**settings: Any) -> Petiole:
    """An app that reads no config file or environment beyond ``settings``."""
    return Petiole("bench", broker="memory://bench", config_file=os.devnull, **settings)


def build(directory: Path) -> tuple[dict[str, Signer], str | None]:
    """Each signer by label, and why petiole-auth's are missing (None when present)."""
    signers: dict[str, Signer] = {}
    hmac = app(signer="hmac-sha256", signing_key=secrets.token_urlsafe(32)).signer()
    assert hmac is not None
    signers["hmac-sha256 (core)"] = hmac
    try:
        from petiole_auth.testing import Pki, rsa_key
    except ImportError as exc:
        return signers, f"petiole-auth is not installed ({exc})"
    pki = Pki(directory)
    edge = pki.key_pair("edge")
    options = {"private_key": str(edge.private), "trusted_keys": str(edge.public)}
    signers["ed25519"] = _signer("ed25519", options)
    for label, pair in (
        (f"x509, RSA-{RSA_BITS}", pki.key_pair("rsa", rsa_key(RSA_BITS))),
        ("x509, Ed25519", pki.key_pair("ed-cert")),
    ):
        certificate = str(pki.certificate(pair))
        options = {
            "private_key": str(pair.private),
            "certificate": certificate,
            "trusted_certificates": certificate,
        }
        signers[label] = _signer("x509", options)
    return signers, None


def _signer(name: str, options: dict[str, str]) -> Signer:
    built = app(signer=name, signer_options=options).signer()
    assert built is not None, name
    return built
