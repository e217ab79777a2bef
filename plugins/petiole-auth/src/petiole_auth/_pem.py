"""Reading keys and certificates from PEM files, once, when a signer is built.

Every failure is a :class:`~petiole.plugin_api.ConfigError` that names the
option, the path and what was wrong with it (missing, unreadable, encrypted
without a passphrase, a key of the wrong kind), with what to do where there is
one thing to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from petiole.plugin_api import ConfigError
from petiole_auth._options import PASSPHRASE, PASSPHRASE_FILE

_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


class FileOption:
    """Where a file came from, for errors: ``signer_options.trusted_keys of the
    ed25519 signer: '/etc/keys/a.pem' ...``."""

    def __init__(self, signer: str, option: str) -> None:
        self.signer = signer
        self.option = option

    def error(self, path: Path, problem: str) -> ConfigError:
        return ConfigError(
            f"signer_options.{self.option} of the {self.signer} signer: {str(path)!r} {problem}"
        )

    def read(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise self.error(path, "does not exist") from None
        except IsADirectoryError:
            raise self.error(path, "is a directory; this option takes a file") from None
        except OSError as exc:
            raise self.error(path, f"cannot be read ({exc.strerror or exc})") from None

    def files(self, paths: Sequence[Path], suffixes: Sequence[str]) -> Iterator[Path]:
        """Each path that is a file, and the files with one of ``suffixes`` directly in
        each path that is a directory (sorted by name; a directory with none is refused)."""
        for path in paths:
            if not path.is_dir():
                yield path  # read() says so if it is missing
                continue
            found = sorted(p for p in path.iterdir() if p.suffix in suffixes and p.is_file())
            if not found:
                wanted = ", ".join(f"*{s}" for s in suffixes)
                raise self.error(path, f"is a directory with no {wanted} file in it")
            yield from found

    def private_key(self, path: Path, passphrase: bytes | None) -> PrivateKeyTypes:
        data = self.read(path)
        try:
            return load_pem_private_key(data, password=passphrase)
        except TypeError:  # cryptography's word for a passphrase missing, or one too many
            if passphrase is None:
                raise self.error(
                    path,
                    f"is encrypted; set {PASSPHRASE} or {PASSPHRASE_FILE} in signer_options",
                ) from None
            raise self.error(
                path, f"is not encrypted, but a passphrase is set; remove {PASSPHRASE}(_file)"
            ) from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            if passphrase is not None and b"ENCRYPTED" in data:
                raise self.error(path, "cannot be decrypted with the passphrase given") from None
            raise self.error(
                path, f"is not a PEM private key ({_found(data, exc, 'PRIVATE KEY')})"
            ) from None

    def public_key(self, path: Path) -> PublicKeyTypes:
        data = self.read(path)
        try:
            return load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            hint = ""
            if b"PRIVATE KEY-----" in data:
                hint = (
                    "; never hand out a private key: give its public half, made with "
                    f"`openssl pkey -in {path.name} -pubout -out {path.stem}.pub.pem`"
                )
            elif b"CERTIFICATE-----" in data:
                hint = "; to trust certificates, use the x509 signer and trusted_certificates"
            raise self.error(
                path, f"is not a PEM public key ({_found(data, exc, 'PUBLIC KEY')}){hint}"
            ) from None

    def certificates(self, path: Path) -> list[x509.Certificate]:
        """Every certificate in the file (a PEM file may hold several)."""
        data = self.read(path)
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise self.error(
                path, f"holds no PEM certificate ({_found(data, exc, 'CERTIFICATE')})"
            ) from None


def _found(data: bytes, exc: BaseException, wanted: str) -> str:
    """Why a PEM file did not give what was ``wanted`` (a label, such as ``PUBLIC KEY``):
    a block of that kind that does not parse, or what the file holds instead."""
    labels = sorted({m.decode() for m in _LABEL.findall(data)})
    reason = str(exc).split(". See ")[0]  # cryptography's text, without its FAQ link
    matching = [label for label in labels if wanted in label]
    if matching:
        return f"its BEGIN {matching[0]} block cannot be read: {reason}"
    if labels:
        return "found " + ", ".join(f"BEGIN {label}" for label in labels)
    if not data.strip():
        return "the file is empty"
    return "no PEM block in it"
