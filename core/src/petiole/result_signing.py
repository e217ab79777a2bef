"""Signed result records: a client trusts a result only if a worker signed it.

Whoever can write to the result store can otherwise hand a client any value (a
forged SUCCESS, an altered return value) — as untrusted as a broker without
signatures. With ``sign_results`` set, every record an app stores is signed by
its ``signer`` and every record a client reads is verified before its payload is
deserialized; an unsigned record is refused.

The signature and the signer's name travel in the record's ``meta`` (under
:data:`SIGNATURE_META` and :data:`SIGNER_META`), which every result store keeps
as it was given, so no store needs to know about signing. What is signed
(:func:`signed_data`): the task id (a result cannot be moved to another task),
state, content type, traceback, the rest of ``meta`` (children, group ids) and
the payload. ``date_done`` is not: stores keep times at their own precision.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import struct

from petiole.backend import ResultRecord
from petiole.errors import ConfigError, SignatureError
from petiole.stages import Signer

SIGNATURE_META = "petiole.signature"
SIGNER_META = "petiole.signer"
_FORMAT = b"PETR\x01"
_LENGTH = struct.Struct(">I")


def signed_data(record: ResultRecord) -> bytes:
    """The bytes a record's signature covers (see the module docstring)."""
    meta = {k: v for k, v in record.meta.items() if k not in (SIGNATURE_META, SIGNER_META)}
    header = json.dumps(
        [record.task_id, record.state, record.content_type, record.traceback, meta],
        separators=(",", ":"),
        sort_keys=True,
        ensure_ascii=False,
    ).encode()
    return b"".join((_FORMAT, _LENGTH.pack(len(header)), header, bytes(record.payload)))


def sign_record(record: ResultRecord, signer: Signer | None) -> ResultRecord:
    """``record`` with its signature in ``meta``; ``sign_results`` needs a signer."""
    if signer is None:
        raise ConfigError(
            "sign_results is set but no signer is: set the signer setting (and its key) "
            "on every worker, and on clients that revoke tasks"
        )
    signature = base64.b64encode(signer.sign(signed_data(record))).decode("ascii")
    meta = {**record.meta, SIGNER_META: signer.name, SIGNATURE_META: signature}
    return dataclasses.replace(record, meta=meta)


def verify_record(record: ResultRecord, signer: Signer | None, *, required: bool) -> None:
    """Return if ``record`` may be read; raise :class:`SignatureError` saying why not.

    A signed record is verified whenever there is a signer to verify it with; an
    unsigned one, or a signed one with no signer here, is refused when
    ``required`` (the ``sign_results`` setting)."""
    encoded = record.meta.get(SIGNATURE_META)
    if encoded is None:
        if required:
            raise SignatureError(
                f"the result of task {record.task_id} is unsigned and sign_results is set: "
                "it was not stored by a worker with the same signer"
            )
        return
    if signer is None:
        if required:
            raise SignatureError(
                f"the result of task {record.task_id} is signed, but this app has no signer "
                "to verify it with; set the signer setting"
            )
        return
    named = record.meta.get(SIGNER_META)
    if named != signer.name:
        raise SignatureError(
            f"the result of task {record.task_id} was signed by {named!r}, "
            f"but this app verifies with {signer.name!r}"
        )
    try:
        signature = base64.b64decode(str(encoded), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(
            f"the result of task {record.task_id} has a malformed signature: {exc}"
        ) from exc
    try:
        signer.verify(signed_data(record), signature)
    except SignatureError as exc:
        raise SignatureError(f"the result of task {record.task_id} is refused: {exc}") from exc
    except Exception as exc:  # a signer's contract is SignatureError; anything else still refuses
        raise SignatureError(
            f"the result of task {record.task_id} could not be verified by {signer.name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
