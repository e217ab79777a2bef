"""Message stages: framing v2 with its signature slot, v1 still read, codecs and
signers registered as components and applied by the producer."""

from __future__ import annotations

import struct
import uuid
import zlib
from typing import Any

import pytest

from petiole import Petiole
from petiole.envelope import (
    MAGIC,
    MAGIC_V2,
    MAX_SIGNATURE_BYTES,
    PROTOCOL_VERSION,
    Envelope,
    Frame,
    peek_header,
)
from petiole.errors import ConfigError, ProtocolError, SignatureError, UnknownComponentError
from petiole.hookspecs import hookimpl
from petiole.stages import HmacSha256Signer, IdentityCodec, ZlibCodec, verify_frame

KEY = "a-test-signing-key-of-32-bytes-or-more"
SIGNER = HmacSha256Signer(KEY.encode())


def _envelope(body: bytes = b"[[1], {}]", **headers: Any) -> Envelope:
    base = {"protocol": PROTOCOL_VERSION, "id": str(uuid.uuid4()), "task": "t", "sent_at": 1.0}
    return Envelope({**base, **headers}, body, "application/json")


# -- framing ---------------------------------------------------------------------------


def test_unsigned_envelopes_are_framed_v1_byte_for_byte_as_before() -> None:
    envelope = _envelope()
    head = envelope.header_bytes()
    assert envelope.to_bytes() == MAGIC + struct.pack(">I", len(head)) + head + envelope.body
    frame = Frame.parse(envelope.to_bytes())
    assert (frame.version, frame.signature) == (1, b"")


def test_signed_envelopes_are_framed_v2_with_the_signature_between_header_and_body() -> None:
    envelope = _envelope()
    payload = envelope.to_bytes(SIGNER)
    assert payload[:4] == MAGIC_V2
    (head_length,) = struct.unpack_from(">I", payload, 4)
    head = payload[8 : 8 + head_length]
    (signature_length,) = struct.unpack_from(">I", payload, 8 + head_length)
    signature = payload[12 + head_length : 12 + head_length + signature_length]
    assert payload[12 + head_length + signature_length :] == envelope.body
    assert b'"signer":"hmac-sha256"' in head
    # The signature covers magic, header length, header block and body: all but its slot.
    SIGNER.verify(MAGIC_V2 + struct.pack(">I", head_length) + head + envelope.body, signature)


def test_a_signed_message_parses_to_the_same_envelope() -> None:
    envelope = _envelope(retries=2, user_header="x")
    assert Envelope.from_bytes(envelope.to_bytes(SIGNER)) == envelope


def test_signer_is_a_reserved_header_key_not_a_header() -> None:
    envelope = _envelope(signer="forged")
    assert b"forged" not in envelope.to_bytes()
    assert "signer" not in Envelope.from_bytes(envelope.to_bytes(SIGNER)).headers


def test_peek_header_reads_v1_and_v2_messages() -> None:
    envelope = _envelope(group="g1")
    assert peek_header(envelope.to_bytes(), "group") == "g1"
    assert peek_header(envelope.to_bytes(SIGNER), "group") == "g1"
    assert peek_header(envelope.to_bytes(SIGNER), "signer") == "hmac-sha256"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"PET3\x00\x00\x00\x02{}", "bad magic"),
        (MAGIC_V2 + b"\x00\x00\x00\x02{}", "no signature length"),
        (MAGIC_V2 + b"\x00\x00\x00\x02{}\x00\x00\x00\x09abc", "signature runs past the end"),
        (MAGIC_V2 + b"\x00\x00\x00\x02{}" + struct.pack(">I", MAX_SIGNATURE_BYTES + 1), "over"),
        (MAGIC_V2 + b"\x00\x00\x00\x09{}", "header block runs past the end"),
    ],
)
def test_malformed_v2_framing_is_a_protocol_error(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        Frame.parse(payload)


def test_a_signer_making_an_oversized_signature_is_refused_at_send() -> None:
    class Huge:
        name = "huge"

        def sign(self, data: bytes) -> bytes:
            return b"s" * (MAX_SIGNATURE_BYTES + 1)

        def verify(self, data: bytes, signature: bytes) -> None: ...

    with pytest.raises(ProtocolError, match="signature of"):
        _envelope().to_bytes(Huge())


# -- verification rules ----------------------------------------------------------------


def test_verify_frame_accepts_unsigned_messages_unless_signatures_are_required() -> None:
    frame = Frame.parse(_envelope().to_bytes())
    verify_frame(frame, SIGNER, require_signature=False)
    verify_frame(frame, None, require_signature=False)
    with pytest.raises(SignatureError, match="unsigned"):
        verify_frame(frame, SIGNER, require_signature=True)


def test_verify_frame_refuses_a_bad_signature_even_when_signatures_are_optional() -> None:
    other = HmacSha256Signer(b"another key, also 32 bytes long!!")
    frame = Frame.parse(_envelope().to_bytes(other))
    with pytest.raises(SignatureError, match="does not match"):
        verify_frame(frame, SIGNER, require_signature=False)


def test_a_worker_without_a_signer_refuses_signed_messages_only_when_requiring_them() -> None:
    frame = Frame.parse(_envelope().to_bytes(SIGNER))
    verify_frame(frame, None, require_signature=False)
    with pytest.raises(SignatureError, match="no signer"):
        verify_frame(frame, None, require_signature=True)


def test_a_signer_that_raises_something_else_still_refuses() -> None:
    class Broken:
        name = "broken"

        def sign(self, data: bytes) -> bytes:
            return b"sig"

        def verify(self, data: bytes, signature: bytes) -> None:
            raise ValueError("boom")

    frame = Frame.parse(_envelope().to_bytes(Broken()))
    with pytest.raises(SignatureError, match="ValueError: boom"):
        verify_frame(frame, Broken(), require_signature=False)


def test_hmac_signer_refuses_a_short_key() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        HmacSha256Signer(b"short")


# -- the app: settings, plugins, producing ----------------------------------------------


def _sent(app: Petiole) -> bytes:
    delivery = app.transport.reserve(["default"], max_messages=1, wait_s=0.5, lease_s=30)[0]
    return delivery.payload


def test_the_builtin_codecs_and_signer_are_registered(app: Petiole) -> None:
    assert isinstance(app.codec("identity"), IdentityCodec)
    assert isinstance(app.codec("zlib"), ZlibCodec)
    assert {"identity", "zlib"} <= set(app.plugins.provided("codec"))
    assert "hmac-sha256" in app.plugins.provided("signer")


def test_an_unknown_codec_names_what_is_installed(app: Petiole) -> None:
    with pytest.raises(
        UnknownComponentError, match=r"no codec named 'x-made-up'.*bzip2, identity, lzma, zlib"
    ):
        app.codec("x-made-up")


def test_a_plugin_codec_registered_by_class_is_built_on_first_use(app: Petiole) -> None:
    built: list[str] = []

    class Rot:
        name = "rot1"

        def __init__(self) -> None:
            built.append(self.name)

        def encode(self, data: bytes) -> bytes:
            return bytes((b + 1) % 256 for b in data)

        def decode(self, data: bytes, *, max_output_bytes: int) -> bytes:
            return bytes((b - 1) % 256 for b in data)

    class Plugin:
        @hookimpl
        def petiole_codecs(self) -> dict[str, Any]:
            return {"rot1": Rot}

    app.register_plugin(Plugin(), "rot")
    assert "rot1" in app.plugins.provided("codec")
    assert built == []
    assert app.codec("rot1").decode(b"\x01", max_output_bytes=1) == b"\x00"
    assert built == ["rot1"]


def test_send_compresses_bodies_over_the_threshold(app: Petiole) -> None:
    app.configure(compression="zlib", compression_min_bytes=100)
    app.send_task("t", ["x" * 1000])
    envelope = Envelope.from_bytes(_sent(app))
    assert envelope.content_encoding == "zlib"
    assert zlib.decompress(envelope.body) == b'[["' + b"x" * 1000 + b'"],{}]'
    app.send_task("t", ["short"])
    small = Envelope.from_bytes(_sent(app))
    assert (small.content_encoding, small.body) == ("identity", b'[["short"],{}]')


def test_send_signs_when_a_signer_is_set(app: Petiole) -> None:
    app.configure(signer="hmac-sha256", signing_key=KEY)
    app.send_task("t", [1])
    frame = Frame.parse(_sent(app))
    assert frame.version == 2
    verify_frame(frame, SIGNER, require_signature=True)


def test_send_writes_v1_without_a_signer(app: Petiole) -> None:
    app.send_task("t", [1])
    assert _sent(app)[:4] == MAGIC


def test_a_signer_without_its_key_fails_the_apps_first_use(app: Petiole) -> None:
    app.configure(signer="hmac-sha256")
    with pytest.raises(ConfigError, match="signing_key"):
        app.send_task("t", [1])


def test_an_unknown_compression_codec_fails_the_apps_first_use(app: Petiole) -> None:
    app.configure(compression="x-made-up")
    with pytest.raises(UnknownComponentError, match="no codec named 'x-made-up'"):
        app.send_task("t", [1])


def test_the_signing_key_stays_out_of_the_settings_repr(app: Petiole) -> None:
    app.configure(signer="hmac-sha256", signing_key=KEY)
    assert KEY not in repr(app.settings)
    assert KEY not in repr(app.signer())


def test_credentials_in_urls_and_option_tables_are_masked_in_the_settings_repr(
    app: Petiole,
) -> None:
    app.configure(
        broker_url="redis://:broker-pw@127.0.0.1:6379/0",
        broker_options={"password": "option-pw", "key_prefix": "shown"},
        signer_options={"private_key_passphrase": "unlocks-the-key"},
    )
    shown = repr(app.settings)
    for secret in ("broker-pw", "option-pw", "unlocks-the-key"):
        assert secret not in shown
    assert "'key_prefix': 'shown'" in shown


def test_eager_tasks_run_compressed_bodies(app: Petiole) -> None:
    app.configure(eager=True, compression="zlib", compression_min_bytes=0)

    @app.task
    def length(text: str) -> int:
        return len(text)

    assert length.delay("y" * 5000).get(timeout=1) == 5000


def test_signed_and_compressed_tasks_run_on_a_worker_requiring_signatures(app: Petiole) -> None:
    from petiole.testing.in_thread import start_worker

    app.configure(
        signer="hmac-sha256",
        signing_key=KEY,
        require_signature=True,
        compression="zlib",
        compression_min_bytes=0,
    )

    @app.task
    def join(*parts: str) -> str:
        return "".join(parts)

    with start_worker(app):
        assert join.delay("a" * 3000, "b").get(timeout=10) == "a" * 3000 + "b"


def test_v1_messages_already_queued_still_run_after_signing_is_turned_on(app: Petiole) -> None:
    from petiole.testing.in_thread import start_worker

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    old = app.send_task("add", [2, 3])  # unsigned: framing v1
    with app.override(isolated=False, signer="hmac-sha256", signing_key=KEY):
        new = app.send_task("add", [4, 5])  # signed: framing v2
        with start_worker(app):
            assert old.get(timeout=10) == 5
            assert new.get(timeout=10) == 9
