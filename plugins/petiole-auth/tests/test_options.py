"""signer_options as each signer reads it: unknown options and wrong types refused,
naming what is valid; a passphrase never shown."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from petiole_auth.ed25519 import create_ed25519_signer
from petiole_auth.testing import Pki
from petiole_auth.x509 import create_x509_signer

from petiole.plugin_api import ConfigError, SettingTypeError, UnknownSettingError


def _settings(**options: Any) -> Any:
    return SimpleNamespace(signer_options=options)


def test_an_unknown_option_is_refused_naming_the_valid_ones_and_the_closest() -> None:
    with pytest.raises(UnknownSettingError) as info:
        create_x509_signer(_settings(trusted_certificate="/etc/petiole/trusted"))
    message = str(info.value)
    assert "unknown setting 'trusted_certificate' in signer_options of the x509 signer" in message
    assert "valid: private_key, certificate, private_key_passphrase" in message
    assert "did you mean 'trusted_certificates'?" in message


def test_the_other_signers_option_is_unknown() -> None:
    with pytest.raises(UnknownSettingError, match="did you mean 'trusted_keys'"):
        create_ed25519_signer(_settings(trusted_certificates="/etc/petiole/trusted"))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"certificate": 42}, r"'certificate' .* must be a path \(a string\), got int 42"),
        # A value under a secret-looking name is masked, whatever it is.
        ({"private_key": 42}, r"'private_key' .* must be a path \(a string\), got str '\*\*\*'"),
        ({"trusted_certificates": [1, 2]}, "'trusted_certificates' .* must be a path or a list"),
        ({"trusted_certificates": {"a": "b"}}, "'trusted_certificates' .* must be a path or a"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_saying_what_was_expected(
    options: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SettingTypeError, match=expected):
        create_x509_signer(_settings(**options))


def test_a_passphrase_of_the_wrong_type_is_shown_masked(pki: Pki) -> None:
    pair = pki.key_pair("producer")
    with pytest.raises(SettingTypeError) as info:
        create_ed25519_signer(_settings(private_key=str(pair.private), private_key_passphrase=1234))
    assert "got str '***'" in str(info.value)
    assert "1234" not in str(info.value)


def test_a_passphrase_and_a_passphrase_file_together_are_refused(pki: Pki, tmp_path: Path) -> None:
    pair = pki.key_pair("producer", passphrase=b"phrase")
    (tmp_path / "phrase").write_text("phrase")
    with pytest.raises(
        ConfigError, match=r"sets both private_key_passphrase and .*_file; keep one"
    ):
        create_ed25519_signer(
            _settings(
                private_key=str(pair.private),
                private_key_passphrase="phrase",
                private_key_passphrase_file=str(tmp_path / "phrase"),
            )
        )


def test_a_missing_passphrase_file_names_it(pki: Pki, tmp_path: Path) -> None:
    pair = pki.key_pair("producer", passphrase=b"phrase")
    missing = tmp_path / "nope"
    with pytest.raises(
        ConfigError, match=f"private_key_passphrase_file '{missing}' cannot be read"
    ):
        create_ed25519_signer(
            _settings(private_key=str(pair.private), private_key_passphrase_file=str(missing))
        )


def test_paths_expand_the_home_directory(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    pki.key_pair("producer")
    monkeypatch.setenv("HOME", str(pki.directory))
    signer = create_ed25519_signer(_settings(private_key="~/producer.key"))
    assert signer.key_id is not None


def test_empty_options_count_as_unset(pki: Pki) -> None:
    pair = pki.key_pair("producer")
    signer = create_ed25519_signer(
        _settings(private_key=str(pair.private), trusted_keys="", private_key_passphrase="")
    )
    assert "trusted_keys=0" in repr(signer)
