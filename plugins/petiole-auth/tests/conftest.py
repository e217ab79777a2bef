"""Keys and certificates, made per test with cryptography (fast: Ed25519 keys are
microseconds to make). RSA keys take much longer, so the session makes two, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from petiole_auth.testing import Pki, rsa_key


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture(scope="session")
def rsa_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return rsa_key(2048), rsa_key(2048)


@pytest.fixture(autouse=True)
def _no_petiole_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps built in these tests read no PETIOLE_* variable of the environment."""
    import os

    for name in list(os.environ):
        if name.startswith(("PETIOLE_", "CELERY_")):
            monkeypatch.delenv(name)
