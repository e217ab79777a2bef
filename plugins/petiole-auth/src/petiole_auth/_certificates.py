"""Pinned certificates: what the ``x509`` signer keeps of each one it trusts or signs with.

A certificate is parsed once; what verification needs of it (its public key
wrapped for its algorithm, its validity window as epoch seconds) is kept ready,
so a message costs a dictionary lookup, two comparisons and the signature check.
Nothing else of the certificate is looked at: no issuer, no chain, no key usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from petiole_auth import _algorithms, _wire


@dataclass(frozen=True, slots=True)
class PinnedCertificate:
    """A certificate, by its SHA-256 fingerprint, and what verifying against it needs."""

    fingerprint: bytes
    subject: str
    not_before: datetime
    not_after: datetime
    key: _algorithms.PublicKey
    source: str  # the file it was read from, for messages
    # The window again as epoch seconds: verification compares floats, once per message.
    not_before_s: float
    not_after_s: float

    @classmethod
    def of(cls, certificate: x509.Certificate, source: str) -> PinnedCertificate:
        """Raises :class:`~petiole_auth._algorithms.UnsupportedKey` for a key no signer uses."""
        not_before = certificate.not_valid_before_utc
        not_after = certificate.not_valid_after_utc
        return cls(
            fingerprint=certificate.fingerprint(hashes.SHA256()),
            subject=certificate.subject.rfc4514_string() or "(no subject)",
            not_before=not_before,
            not_after=not_after,
            key=_algorithms.public_key(certificate.public_key()),
            source=source,
            not_before_s=not_before.timestamp(),
            not_after_s=not_after.timestamp(),
        )

    def describe(self) -> str:
        """``certificate 'CN=web' (SHA-256 AB:CD:...)``."""
        return f"certificate {self.subject!r} (SHA-256 {_wire.show_fingerprint(self.fingerprint)})"

    def validity_problem(self, now_s: float) -> str | None:
        """Why the certificate is not valid at ``now_s`` (epoch seconds), or None when it is.
        The window includes both ends (RFC 5280)."""
        if self.not_before_s <= now_s <= self.not_after_s:
            return None
        window = f"valid from {_show(self.not_before)} to {_show(self.not_after)}"
        if now_s > self.not_after_s:
            return f"{self.describe()} expired on {_show(self.not_after)} ({window})"
        return (
            f"{self.describe()} is not valid yet ({window}, and it is now "
            f"{_show(datetime.fromtimestamp(now_s, self.not_before.tzinfo))}; "
            "check the clocks)"
        )


def _show(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
