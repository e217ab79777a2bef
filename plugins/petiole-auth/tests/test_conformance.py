"""The signer conformance suite, on each signer as its factory builds it from files
(and the x509 signer with each key type it signs with)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from petiole_auth.ed25519 import create_ed25519_signer
from petiole_auth.testing import Pki
from petiole_auth.x509 import create_x509_signer

from petiole.plugin_api import Signer, SignerSuite


def _settings(**options: Any) -> Any:
    return SimpleNamespace(signer_options=options)


def _ed25519(pki: Pki, name: str) -> Signer:
    pair = pki.key_pair(name)
    return create_ed25519_signer(
        _settings(private_key=str(pair.private), trusted_keys=[str(pair.public)])
    )


def _x509(pki: Pki, name: str, key: rsa.RSAPrivateKey | None = None) -> Signer:
    pair = pki.key_pair(name, key)
    certificate = pki.certificate(pair)
    return create_x509_signer(
        _settings(
            private_key=str(pair.private),
            certificate=str(certificate),
            trusted_certificates=str(pki.trust_store(certificate, name=f"{name}-trusted")),
        )
    )


class TestEd25519Signer(SignerSuite):
    @pytest.fixture
    def signer(self, pki: Pki) -> Signer:
        return _ed25519(pki, "producer")

    @pytest.fixture
    def other_signer(self, pki: Pki) -> Signer:
        return _ed25519(pki, "other")


class TestX509RsaPssSigner(SignerSuite):
    @pytest.fixture
    def signer(self, pki: Pki, rsa_keys: tuple[rsa.RSAPrivateKey, ...]) -> Signer:
        return _x509(pki, "producer", rsa_keys[0])

    @pytest.fixture
    def other_signer(self, pki: Pki, rsa_keys: tuple[rsa.RSAPrivateKey, ...]) -> Signer:
        return _x509(pki, "other", rsa_keys[1])


class TestX509Ed25519Signer(SignerSuite):
    @pytest.fixture
    def signer(self, pki: Pki) -> Signer:
        return _x509(pki, "producer")

    @pytest.fixture
    def other_signer(self, pki: Pki) -> Signer:
        return _x509(pki, "other")
