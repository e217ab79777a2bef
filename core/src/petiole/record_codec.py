"""A ResultRecord as one byte string, and back, for stores that keep one value per key.

Format version 1::

    b"\\x01" | 4-byte big-endian header length | header JSON | payload bytes

where the header is ``[state, content_type, traceback, date_done, meta]``. The
payload is stored as is (never base64'd), so a result costs its own size plus a
small header. A reader refuses any other first byte with an error naming it,
so a later format can be told apart.
"""

from __future__ import annotations

import json
import struct

from petiole.backend import ResultRecord
from petiole.errors import ResultBackendError

FORMAT = b"\x01"
_HEADER_LENGTH = struct.Struct(">I")
# Built once (json.dumps given options builds an encoder on every call).
_encode_header = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode


def encode_record(record: ResultRecord) -> bytes:
    """Raises :class:`~petiole.errors.ResultBackendError` if ``meta`` is not JSON-safe."""
    try:
        header = _encode_header(
            [record.state, record.content_type, record.traceback, record.date_done, record.meta]
        ).encode()
    except (TypeError, ValueError) as exc:
        raise ResultBackendError(
            f"the meta of task {record.task_id!r} is not JSON-safe ({exc}); "
            f"meta may hold only JSON types"
        ) from exc
    return b"".join((FORMAT, _HEADER_LENGTH.pack(len(header)), header, bytes(record.payload)))


def decode_record(task_id: str, value: bytes, *, store: str) -> ResultRecord:
    """Raises :class:`~petiole.errors.ResultBackendError` (naming ``store``) for a value
    not written by :func:`encode_record`."""
    try:
        if value[:1] != FORMAT:
            raise ValueError(f"unknown format byte {value[:1]!r}")
        (length,) = _HEADER_LENGTH.unpack_from(value, 1)
        start = 1 + _HEADER_LENGTH.size
        state, content_type, traceback, date_done, meta = json.loads(value[start : start + length])
    except (ValueError, TypeError, struct.error) as exc:
        raise ResultBackendError(
            f"the stored result of task {task_id!r} is not a {store} record: {exc}"
        ) from exc
    return ResultRecord(
        task_id=task_id,
        state=state,
        payload=bytes(value[start + length :]),
        content_type=content_type,
        traceback=traceback,
        date_done=date_done,
        meta=meta,
    )
