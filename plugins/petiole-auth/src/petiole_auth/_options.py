"""The ``signer_options`` table, read once when a factory builds its signer.

Each signer declares the options it takes; an unknown one is refused naming the
valid ones, a value of the wrong type naming what was expected. Paths are
strings (``~`` is expanded; a relative path is relative to the process's
working directory); a list option takes one path or a list of them. The
passphrase is never shown: not in errors, not in a repr.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from petiole.plugin_api import (
    ConfigError,
    SettingTypeError,
    UnknownSettingError,
    closest,
    mask_value,
)

# Option names, not passwords.
PASSPHRASE = "private_key_passphrase"  # noqa: S105
PASSPHRASE_FILE = "private_key_passphrase_file"  # noqa: S105


class SignerSettings(Protocol):
    """What a factory reads of the app's settings (:class:`petiole.config.Settings` is one)."""

    @property
    def signer_options(self) -> Mapping[str, Any]: ...


def source(signer: str) -> str:
    """How errors name the table: ``signer_options of the x509 signer``."""
    return f"signer_options of the {signer} signer"


class SignerOptions:
    """One signer's view of ``signer_options``, checked against the options it takes."""

    def __init__(self, raw: Mapping[str, Any], *, signer: str, valid: Sequence[str]) -> None:
        self.signer = signer
        self._raw = dict(raw)
        for key in self._raw:
            if key not in valid:
                raise UnknownSettingError(
                    key,
                    source=f"{source(signer)} (valid: {', '.join(valid)})",
                    suggestion=closest(key, valid),
                )

    def path(self, name: str) -> Path | None:
        """The path option ``name``, or None when unset (or empty)."""
        value = self._raw.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self._refused(name, value, "a path (a string)")
        return Path(value).expanduser()

    def paths(self, name: str) -> tuple[Path, ...]:
        """The option ``name`` as paths: one string, or a list of them; () when unset."""
        value = self._raw.get(name)
        if value is None or value == "":
            return ()
        if isinstance(value, str):
            return (Path(value).expanduser(),)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
            return tuple(Path(v).expanduser() for v in value)
        raise self._refused(name, value, "a path or a list of paths (strings)")

    def passphrase(self) -> bytes | None:
        """The private key's passphrase: ``private_key_passphrase``, or the first line of
        the file ``private_key_passphrase_file`` names (which keeps it out of the
        settings altogether); None when neither is set."""
        value = self._raw.get(PASSPHRASE)
        path = self.path(PASSPHRASE_FILE)
        if value not in (None, "") and path is not None:
            raise ConfigError(
                f"{source(self.signer)} sets both {PASSPHRASE} and {PASSPHRASE_FILE}; keep one"
            )
        if path is not None:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"{source(self.signer)}: {PASSPHRASE_FILE} {str(path)!r} cannot be read "
                    f"({_why(exc)})"
                ) from None
            return text.splitlines()[0].encode() if text else b""
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self._refused(PASSPHRASE, value, "a string")  # shown as ***: a secret's name
        return value.encode()

    def _refused(self, name: str, value: Any, expected: str) -> SettingTypeError:
        return SettingTypeError(
            name, source=source(self.signer), expected=expected, got=mask_value(name, value)
        )


def _why(exc: BaseException) -> str:
    """An OS error's reason without repeating its path (the message already names it)."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
