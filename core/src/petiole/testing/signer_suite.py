"""The signer conformance suite.

A signer plugin subclasses :class:`SignerSuite` in its own tests and provides
two fixtures: ``signer``, and ``other_signer`` — the same kind of signer with
another key, whose signatures ``signer`` must refuse::

    class TestEd25519Signer(SignerSuite):
        @pytest.fixture
        def signer(self) -> Signer:
            return Ed25519Signer(private_key=KEY_A, public_keys=[PUB_A])

        @pytest.fixture
        def other_signer(self) -> Signer:
            return Ed25519Signer(private_key=KEY_B, public_keys=[PUB_B])

Verification raises :class:`~petiole.stages.SignatureError` for any change to
the data or the signature, and nothing else; signed messages survive the
framing and are refused by :func:`~petiole.stages.verify_frame` once tampered.
"""

from __future__ import annotations

import time
import uuid

import pytest

from petiole.envelope import MAX_SIGNATURE_BYTES, Envelope, Frame, task_headers
from petiole.errors import SignatureError
from petiole.stages import Signer, verify_frame

DATA = b'PET2\x00\x00\x00\x02{}[["payload"], {}]'


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _envelope() -> Envelope:
    headers = task_headers(str(uuid.uuid4()), "proj.add", sent_at=time.time())
    return Envelope(headers, b"[[2, 3], {}]", "application/json")


class SignerSuite:
    """Subclass with ``signer`` and ``other_signer`` fixtures."""

    def test_signer_has_a_name(self, signer: Signer) -> None:
        assert isinstance(signer, Signer)
        assert isinstance(signer.name, str)
        assert signer.name

    def test_a_signature_verifies(self, signer: Signer) -> None:
        signer.verify(DATA, signer.sign(DATA))

    def test_a_signature_is_bytes_of_bounded_length(self, signer: Signer) -> None:
        signature = signer.sign(DATA)
        assert isinstance(signature, bytes)
        assert 0 < len(signature) <= MAX_SIGNATURE_BYTES

    def test_empty_data_signs_and_verifies(self, signer: Signer) -> None:
        signer.verify(b"", signer.sign(b""))

    def test_large_data_signs_and_verifies(self, signer: Signer) -> None:
        data = bytes(range(256)) * 40_000
        signer.verify(data, signer.sign(data))

    def test_tampered_data_is_refused(self, signer: Signer) -> None:
        signature = signer.sign(DATA)
        for index in (0, len(DATA) // 2, len(DATA) - 1):
            with pytest.raises(SignatureError):
                signer.verify(_flip(DATA, index), signature)

    def test_extended_or_truncated_data_is_refused(self, signer: Signer) -> None:
        signature = signer.sign(DATA)
        for changed in (DATA + b"\x00", DATA[:-1], b""):
            with pytest.raises(SignatureError):
                signer.verify(changed, signature)

    def test_tampered_signature_is_refused(self, signer: Signer) -> None:
        signature = signer.sign(DATA)
        for index in (0, len(signature) // 2, len(signature) - 1):
            with pytest.raises(SignatureError):
                signer.verify(DATA, _flip(signature, index))

    def test_truncated_or_empty_signature_is_refused(self, signer: Signer) -> None:
        signature = signer.sign(DATA)
        for changed in (signature[:-1], signature[:1], b"", signature + b"\x00"):
            with pytest.raises(SignatureError):
                signer.verify(DATA, changed)

    def test_another_keys_signature_is_refused(self, signer: Signer, other_signer: Signer) -> None:
        with pytest.raises(SignatureError):
            signer.verify(DATA, other_signer.sign(DATA))
        with pytest.raises(SignatureError):
            other_signer.verify(DATA, signer.sign(DATA))

    def test_a_signed_envelope_frames_and_verifies(self, signer: Signer) -> None:
        envelope = _envelope()
        frame = Frame.parse(envelope.to_bytes(signer))
        assert frame.version == 2
        verify_frame(frame, signer, require_signature=True)
        assert frame.envelope() == envelope

    def test_a_tampered_signed_envelope_is_refused(self, signer: Signer) -> None:
        payload = _envelope().to_bytes(signer)
        tampered = payload[:-3] + b"9]}"  # the body's last bytes
        with pytest.raises(SignatureError):
            verify_frame(Frame.parse(tampered), signer, require_signature=False)
