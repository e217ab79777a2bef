"""The plugin as an app sees it: found through its entry point without importing
its signers (so cryptography is imported only by an app that names one), built
from the settings, and importing only the plugin API."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timezone

import petiole_auth
import pytest
from petiole_auth.ed25519 import Ed25519Signer
from petiole_auth.testing import DAY, Pki
from petiole_auth.x509 import X509Signer

from petiole import Petiole
from petiole.plugin_api import ConfigError, core_imports_beyond


def test_the_signers_are_listed_without_importing_them() -> None:
    code = """
import sys
from petiole import Petiole

registry = Petiole("t", config_file="/dev/null").plugins
info = registry.infos["auth"]
assert (info.distribution, info.status) == ("petiole-auth", "loaded"), info
assert {"ed25519", "x509"} <= set(registry.provided("signer")), registry.provided("signer")
loaded = [m for m in sys.modules if m.startswith("petiole_auth.")]
assert loaded == ["petiole_auth.plugin"], loaded
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_signer_setting_builds_each_signer_from_signer_options(pki: Pki) -> None:
    pair = pki.key_pair("web")
    certificate = pki.certificate(pair)
    for name, options, kind in [
        ("ed25519", {"trusted_keys": str(pair.public)}, Ed25519Signer),
        ("x509", {"trusted_certificates": str(certificate)}, X509Signer),
    ]:
        app = Petiole("t", config_file="/dev/null", signer=name, signer_options=options)
        assert isinstance(app.signer(), kind)
        app.close()


def test_a_producer_with_an_expired_certificate_fails_its_first_send_naming_the_file(
    pki: Pki,
) -> None:
    pair = pki.key_pair("web")
    now = datetime.now(timezone.utc)
    expired = pki.certificate(pair, not_before=now - 30 * DAY, not_after=now - DAY)
    options = {"private_key": str(pair.private), "certificate": str(expired)}
    store = f"memory://{uuid.uuid4().hex}"
    app = Petiole(
        "t",
        config_file="/dev/null",
        broker=store,
        backend=store,
        signer="x509",
        signer_options=options,
    )
    with pytest.raises(ConfigError, match=f"'{expired}' holds certificate 'CN=web' .* expired on"):
        app.send_task("t", [1])
    assert app.transport.size("default") == 0
    app.close()


def test_the_plugin_uses_only_the_plugin_api() -> None:
    """Everything else in the core may change; petiole.plugin_api is the contract."""
    assert core_imports_beyond(petiole_auth) == {}
