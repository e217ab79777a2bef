"""Hook implementations only: importing this module stays cheap and safe, since
every app that has the plugin installed imports it. Each signer is named as
``"module:attribute"``, so ``cryptography`` is imported only when an app's
``signer`` setting first names one."""

from __future__ import annotations

from collections.abc import Mapping

from petiole.plugin_api import SignerFactory, hookimpl


@hookimpl
def petiole_signers() -> Mapping[str, str | SignerFactory]:
    return {
        "ed25519": "petiole_auth.ed25519:create_ed25519_signer",
        "x509": "petiole_auth.x509:create_x509_signer",
    }
