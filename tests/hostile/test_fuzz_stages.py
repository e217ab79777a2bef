"""Fuzzing the worker's decode path for every serializer, codec and signer installed.

A worker (threads pool, in this process, on SQLite) is fed valid messages for
each registered serializer x codec, signed by the signer under test, and the
same messages mutated: body bytes flipped, cut or extended; the content type
or encoding swapped for another registered one or a made-up one; the body of
another serializer under a content type that lies; a decompression bomb under
each codec; signatures cut, flipped, swapped between messages, stripped, or
made by a key the worker does not trust. Serializers, codecs and signers are
discovered through the app's plugin registry, so a new plugin is fuzzed with
no change here.

For every input the worker either runs the task (a result is stored) or
dead-letters the message with a non-empty reason; inputs whose fate is certain
(a valid message, a bad signature, a bomb, an unknown content type or
encoding) must meet exactly that fate. No worker thread dies, no internal
error is logged, and a valid message sent last still runs. The number of
inputs tried is printed (``-s``) and listed in the terminal summary.

Hypothesis draws batches (derandomized, generate phase only, as in
test_fuzz_worker.py): each example costs a worker round trip.
"""

from __future__ import annotations

import collections
import logging
import pickle
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hostile_app import register
from hostile_kit import (
    FUZZ_COUNTS,
    Stores,
    count_input,
    dead_letters,
    headers_for,
    missing_threads,
    petiole_threads,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from petiole import Petiole
from petiole.envelope import IDENTITY, MAGIC, MAGIC_V2, Envelope, Frame
from petiole.errors import MessageDeadLettered, PetioleError, ProtocolError
from petiole.result import AsyncResult
from petiole.stages import Codec, HmacSha256Signer, Signer
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker

pytestmark = pytest.mark.slow

QUEUE = "fuzz-stages"
TASK = "hostile.echo"
BATCHES = 25  # hypothesis examples per signer case
BATCH = (6, 9)  # messages per example: about 180 inputs per case
SETTLE_S = 20.0
# Small, so a bomb is cheap to make: every codec's bomb inflates far past it.
MAX_BODY_BYTES = 16 * 1024
BOMB_BYTES = 1024 * 1024
MADE_UP_CONTENT_TYPE = "application/x-made-up"
MADE_UP_ENCODING = "x-made-up"

REFUSED = "refused, not verified"
NOT_ACCEPTED = "is not accepted"
NO_CODEC = "cannot be decoded here"
BOMB = "max_body_bytes"
ANY_REASON = ""  # dead-lettered, for whatever reason
# Substrings of a reason that mean the worker, not the message, was at fault.
INTERNAL = ("failed to check it", "a bug in petiole")
# What Fates.run_state reads for a task the worker dead-lettered before it ran.
DEAD_LETTERED = "FAILURE (dead-lettered)"

SIGNER_CASES = [None, "hmac-sha256", "ed25519", "x509"]

FUZZ = settings(
    max_examples=BATCHES,
    deadline=None,
    derandomize=True,  # the same inputs every run: a CI failure reproduces
    database=None,
    phases=[Phase.generate],  # shrinking would cost a worker round trip per step
    suppress_health_check=list(HealthCheck),
)

# Values every serializer can write (msgpack has no integers past 64 bits, strict
# JSON no NaN): what a task is called with, before the message is mutated.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
task_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


# -- the signer cases -----------------------------------------------------------------------


@dataclass
class SignerCase:
    """The worker's settings for one signer, and a signer it does not trust."""

    name: str | None
    settings: dict[str, Any]
    stranger: Signer | None


def _signer_case(name: str | None, tmp_path: Path) -> SignerCase:
    if name is None:
        return SignerCase(None, {}, None)
    if name == "hmac-sha256":
        key = secrets.token_urlsafe(32)
        settings_ = {"signer": name, "signing_key": key, "require_signature": True}
        return SignerCase(name, settings_, HmacSha256Signer(secrets.token_bytes(32)))
    pki_module = pytest.importorskip("petiole_auth.testing", reason="petiole-auth not installed")
    pki = pki_module.Pki(tmp_path / "pki")
    own, stranger = pki.key_pair("producer"), pki.key_pair("stranger")
    if name == "ed25519":
        options = {"private_key": str(own.private), "trusted_keys": str(own.public)}
        stranger_options = {"private_key": str(stranger.private)}
    else:
        certificate = pki.certificate(own)
        options = {
            "private_key": str(own.private),
            "certificate": str(certificate),
            "trusted_certificates": str(pki.trust_store(certificate)),
        }
        stranger_options = {
            "private_key": str(stranger.private),
            "certificate": str(pki.certificate(stranger)),
        }
    stranger_app = Petiole(
        "stranger", config_file="/dev/null", signer=name, signer_options=stranger_options
    )
    stranger_signer = stranger_app.signer()
    stranger_app.close()
    settings_ = {"signer": name, "signer_options": options, "require_signature": True}
    return SignerCase(name, settings_, stranger_signer)


# -- building and mutating messages -----------------------------------------------------------


@dataclass
class Input:
    """One payload sent to the worker and the fate it must meet: ``"run"``, or
    dead-lettered with ``reason`` in the reason (``ANY_REASON``: any), or either
    (``expect`` None)."""

    what: str
    payload: bytes
    expect: str | None = None
    reason: str = ANY_REASON


@dataclass
class Kit:
    """The worker's registered stages, and how to frame a message as its producer would."""

    serializers: dict[str, Any]  # name -> serializer
    codecs: dict[str, Codec]
    signer: Signer | None
    stranger: Signer | None
    bombs: dict[str, bytes] = field(default_factory=dict)

    def bomb(self, codec: str) -> bytes:
        """A body under ``codec`` that decodes past MAX_BODY_BYTES (made once)."""
        if codec not in self.bombs:
            # Uncompressed, a bomb need only be past the limit (and stays small).
            size = BOMB_BYTES if codec != IDENTITY else 2 * MAX_BODY_BYTES
            raw = b"[[" + b"0," * (size // 2) + b"0],{}]"
            self.bombs[codec] = self.codecs[codec].encode(raw)
        return self.bombs[codec]

    def frame(self, envelope: Envelope, signer: Signer | None = None) -> bytes:
        return envelope.to_bytes(signer if signer is not None else self.signer)


def _position(draw: st.DrawFn, length: int) -> int:
    """A position in bytes ``length`` long, drawn independently of that length: a
    frame's length varies by a byte or two between draws (its ``sent_at`` time),
    and a draw bounded by it would make hypothesis see a different strategy on
    replay (FlakyStrategyDefinition)."""
    return draw(st.integers(0, 1 << 24)) % max(length, 1)


def _flip(data: bytes, index: int, mask: int) -> bytes:
    if not data:
        return b"\x01"
    index %= len(data)
    return data[:index] + bytes([data[index] ^ (mask or 1)]) + data[index + 1 :]


def _with_signature(payload: bytes, signature: bytes) -> bytes:
    """``payload`` (framing v2) with its signature slot holding ``signature``."""
    frame = Frame.parse(payload)
    return b"".join(
        (
            MAGIC_V2,
            len(frame.header).to_bytes(4, "big"),
            frame.header,
            len(signature).to_bytes(4, "big"),
            signature,
            frame.body,
        )
    )


def _unsigned(payload: bytes) -> bytes:
    """``payload`` reframed as v1: the same header block and body, no signature."""
    frame = Frame.parse(payload)
    return MAGIC + len(frame.header).to_bytes(4, "big") + frame.header + frame.body


BODY_MUTATIONS = ["body-flip", "body-cut", "body-extend"]
SIGNATURE_MUTATIONS = ["sig-cut", "sig-flip", "sig-swap", "sig-stripped", "sig-untrusted"]
OTHER_MUTATIONS = [
    "valid",
    "content-type-swap",
    "encoding-swap",
    "body-of-another-serializer",
    "bomb",
    "payload-flip",
    "payload-cut",
]


@st.composite
def stage_inputs(draw: st.DrawFn, kit: Kit) -> Input:
    """One valid message for a drawn serializer x codec (signed when the worker
    has a signer), or that message mutated; with the fate it must meet."""
    serializer_name = draw(st.sampled_from(sorted(kit.serializers)))
    codec_name = draw(st.sampled_from(sorted(kit.codecs)))
    serializer, codec = kit.serializers[serializer_name], kit.codecs[codec_name]
    mutations = OTHER_MUTATIONS + BODY_MUTATIONS
    if kit.signer is not None:
        mutations += SIGNATURE_MUTATIONS
    mutation = draw(st.sampled_from(mutations))
    what = f"{serializer_name}/{codec_name}/{mutation}"

    value = draw(task_values)
    try:
        serialized = serializer.dumps([[value], {}])
    except PetioleError:  # a value this serializer cannot write: still a valid message
        serialized = serializer.dumps([["plain"], {}])
    headers = headers_for(TASK, str(uuid.uuid4()))
    content_type, encoding, body = serializer.content_type, codec.name, codec.encode(serialized)
    # Whether a mutated header or body is signed again by the trusted producer
    # (reaching the decoders) or left with the original signature (refused).
    resign = kit.signer is None or draw(st.booleans())

    def framed() -> bytes:
        return kit.frame(Envelope(headers, body, content_type, encoding))

    original = framed()
    if mutation == "valid":
        return Input(what, original, "run")
    if mutation in ("payload-flip", "payload-cut"):
        index = _position(draw, len(original))
        if mutation == "payload-flip":
            payload = _flip(original, index, draw(st.integers(1, 255)))
        else:
            # Cut in the second half: the task id (early in the header) stays, so each
            # cut payload is told apart from the others of the batch.
            half = len(original) // 2
            payload = original[: half + _position(draw, len(original) - half)]
        # Any change to a signed message breaks its signature or its framing.
        return Input(what, payload, "dead" if kit.signer else None)
    if mutation in SIGNATURE_MUTATIONS:
        signature = Frame.parse(original).signature
        if mutation == "sig-cut":
            payload = _with_signature(original, signature[: _position(draw, len(signature))])
        elif mutation == "sig-flip":
            index = _position(draw, len(signature))
            payload = _with_signature(original, _flip(signature, index, draw(st.integers(1, 255))))
        elif mutation == "sig-swap":
            other = Envelope(headers_for(TASK, str(uuid.uuid4())), body, content_type, encoding)
            payload = _with_signature(original, Frame.parse(kit.frame(other)).signature)
        elif mutation == "sig-stripped":
            payload = _unsigned(original)
        else:
            payload = kit.frame(Envelope(headers, body, content_type, encoding), kit.stranger)
        return Input(what, payload, "dead", REFUSED)

    expect: str | None = None
    reason = ANY_REASON
    if mutation == "content-type-swap":
        others = sorted(
            s.content_type for s in kit.serializers.values() if s.content_type != content_type
        )
        content_type = draw(st.sampled_from([*others, MADE_UP_CONTENT_TYPE]))
        if content_type == MADE_UP_CONTENT_TYPE:
            expect, reason = "dead", NOT_ACCEPTED
    elif mutation == "encoding-swap":
        encoding = draw(
            st.sampled_from([*sorted(set(kit.codecs) - {codec_name}), MADE_UP_ENCODING])
        )
        if encoding == MADE_UP_ENCODING:
            expect, reason = "dead", NO_CODEC
    elif mutation == "body-of-another-serializer":
        liar = kit.serializers[draw(st.sampled_from(sorted(kit.serializers)))]
        body = codec.encode(liar.dumps([[value if liar is serializer else "lie"], {}]))
    elif mutation == "bomb":
        body = kit.bomb(codec_name)
        expect, reason = "dead", BOMB
    elif mutation == "body-flip":
        index = _position(draw, len(body))
        body = _flip(body, index, draw(st.integers(1, 255)))
    elif mutation == "body-cut":
        body = body[: _position(draw, len(body))]
    elif mutation == "body-extend":
        body = body + draw(st.binary(min_size=1, max_size=16))
    if resign:
        return Input(what, framed(), expect, reason)
    # Changed after the producer signed it: the producer's signature, on other bytes.
    payload = _with_signature(framed(), Frame.parse(original).signature)
    if payload == original:  # the mutation happened to change nothing
        return Input(what, payload, "run")
    return Input(f"{what}/not-re-signed", payload, "dead", REFUSED)


# -- observing the worker -------------------------------------------------------------------


@dataclass
class Fates:
    """What became of each payload sent: dead-lettered (reasons) or run (result state)."""

    app: Petiole
    reasons: dict[bytes, list[str]] = field(default_factory=dict)

    def refresh(self) -> None:
        found: dict[bytes, list[str]] = collections.defaultdict(list)
        for letter in dead_letters(self.app, QUEUE):
            found[letter.payload].append(letter.reason)
        self.reasons = found

    def run_state(self, payload: bytes) -> str | None:
        try:
            task_id = Envelope.from_bytes(payload).task_id
        except ProtocolError:
            return None
        record = self.app.backend.get(task_id)
        if record is None:
            return None
        if isinstance(AsyncResult(task_id, self.app).result, MessageDeadLettered):
            return DEAD_LETTERED  # the worker's record of a task it dead-lettered unrun
        return str(record.state)

    def settled(self, payload: bytes) -> bool:
        return payload in self.reasons or self.run_state(payload) in ("SUCCESS", "FAILURE")


def _check(fates: Fates, sent: Input) -> None:
    reasons = fates.reasons.get(sent.payload, [])
    state = fates.run_state(sent.payload)
    assert len(reasons) <= 1, f"{sent.what}: dead-lettered {len(reasons)} times: {reasons}"
    ran = state in ("SUCCESS", "FAILURE")
    assert ran != bool(reasons), f"{sent.what}: ran ({state}) and dead-lettered {reasons}"
    if reasons and state is not None:  # its id was readable: a caller learns its fate
        assert state == DEAD_LETTERED, f"{sent.what}: dead-lettered, but recorded {state}"
    for reason in reasons:
        assert reason.strip(), f"{sent.what}: dead-lettered with an empty reason"
        assert not any(s in reason for s in INTERNAL), f"{sent.what}: {reason}"
    if sent.expect == "run":
        assert state == "SUCCESS", f"{sent.what}: a valid message did not run: {reasons or state}"
    elif sent.expect == "dead":
        assert reasons, f"{sent.what}: must be dead-lettered, but ran ({state})"
        assert sent.reason in reasons[0], f"{sent.what}: {sent.reason!r} not in {reasons[0]!r}"


@pytest.fixture
def internal_errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """Error records with a traceback from the worker's own code (not a task's)."""
    caplog.set_level(logging.ERROR, logger="petiole")

    def found() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.exc_info and "internal error" in r.getMessage()
        ]

    return found


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("signer_name", SIGNER_CASES, ids=lambda n: n or "unsigned")
def test_every_serializer_codec_and_signature_mutation_is_run_or_dead_lettered(
    sqlite_stores: Stores,
    tmp_path: Path,
    signer_name: str | None,
    internal_errors: Callable[[], list[str]],
) -> None:
    case = _signer_case(signer_name, tmp_path)
    probe = sqlite_stores.app("probe")
    serializers = sorted(probe.plugins.provided("serializer"))
    codecs = sorted(probe.plugins.provided("codec"))
    app = register(
        sqlite_stores.app(
            accept_content=serializers, max_body_bytes=MAX_BODY_BYTES, **case.settings
        )
    )
    kit = Kit(
        {n: app.serializer(n) for n in serializers},
        {n: app.codec(n) for n in codecs},
        app.signer(),
        case.stranger,
    )
    name = (
        f"worker decode path, {signer_name or 'unsigned'} "
        f"({len(serializers)} serializers x {len(codecs)} codecs)"
    )
    fates = Fates(app)
    tried: collections.Counter[str] = collections.Counter()

    with start_worker(
        app, pool="threads", concurrency=2, queues=[QUEUE], shutdown_timeout_s=5
    ) as worker:
        threads = petiole_threads()

        @FUZZ
        @given(st.lists(stage_inputs(kit), min_size=BATCH[0], max_size=BATCH[1]))
        def batch(inputs: list[Input]) -> None:
            for sent in inputs:
                app.transport.publish(QUEUE, sent.payload, message_id=str(uuid.uuid4()))
                count_input(name)
                tried[sent.what.split("/")[2]] += 1

            def all_settled() -> bool:
                fates.refresh()
                return all(fates.settled(sent.payload) for sent in inputs)

            assert wait_until(all_settled, timeout_s=SETTLE_S), [
                s.what for s in inputs if not fates.settled(s.payload)
            ]
            for sent in inputs:
                _check(fates, sent)
            died = missing_threads(threads)
            assert not died, f"worker threads died: {died}"

        batch()
        good = app.tasks[TASK].apply_async(("still alive",), queue=QUEUE)
        assert good.get(timeout=10) == "still alive"
        assert not missing_threads(threads), f"worker threads died: {missing_threads(threads)}"
        assert getattr(worker, "fatal_error", None) is None

    assert not internal_errors(), internal_errors()
    print(f"\n{name}: {FUZZ_COUNTS[name]} inputs tried; by mutation {dict(sorted(tried.items()))}")
    assert FUZZ_COUNTS[name] >= BATCHES * BATCH[0]
    assert set(tried) >= {"valid", "bomb"}, tried


class _CreatesFile:
    """Unpickling this creates ``path``: what a JSON-only worker must never do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "x"))


@pytest.mark.parametrize("signer_name", SIGNER_CASES, ids=lambda n: n or "unsigned")
def test_a_pickle_that_would_create_a_file_is_dead_lettered_by_a_json_only_worker(
    sqlite_stores: Stores, tmp_path: Path, signer_name: str | None
) -> None:
    case = _signer_case(signer_name, tmp_path)
    target = tmp_path / "pwned"
    app = register(sqlite_stores.app(accept_content=["json"], **case.settings))
    serializers = [app.serializer(n) for n in sorted(app.plugins.provided("serializer"))]
    codecs = [app.codec(n) for n in sorted(app.plugins.provided("codec"))]
    evil = pickle.dumps([[_CreatesFile(target)], {}])
    name = f"pickle payload to a JSON-only worker, {signer_name or 'unsigned'}"
    # Under every codec, labelled as every registered content type (JSON's a lie).
    sent = [
        Envelope(headers_for(TASK), codec.encode(evil), s.content_type, codec.name).to_bytes(
            app.signer()
        )
        for codec in codecs
        for s in serializers
    ]
    with start_worker(app, pool="threads", concurrency=2, queues=[QUEUE], shutdown_timeout_s=5):
        for payload in sent:
            app.transport.publish(QUEUE, payload, message_id=str(uuid.uuid4()))
            count_input(name)
        assert wait_until(lambda: len(dead_letters(app, QUEUE)) >= len(sent), timeout_s=SETTLE_S)
        good = app.tasks[TASK].apply_async(("still alive",), queue=QUEUE)
        assert good.get(timeout=10) == "still alive"
    letters = {letter.payload: letter.reason for letter in dead_letters(app, QUEUE)}
    assert set(letters) == set(sent)
    assert all(reason.strip() for reason in letters.values()), letters
    assert not target.exists(), "a JSON-only worker unpickled a message body"
    print(f"\n{name}: {FUZZ_COUNTS[name]} inputs tried")
