"""Serializers turn task arguments and results into bytes and back.

A serializer is named by its ``content_type`` on the wire; workers only
deserialize content types listed in ``accept_content`` (JSON by default), so a
message of any other type is refused before its body is touched.

The built-in JSON serializer round-trips, besides JSON's own types:

======================  =============================================
Python value            JSON form
======================  =============================================
``datetime``            ``{"__petiole__": "datetime", "v": ISO 8601}``
``date`` / ``time``     ``{"__petiole__": "date"|"time", "v": ISO 8601}``
``timedelta``           ``{"__petiole__": "timedelta", "v": seconds}``
``UUID``                ``{"__petiole__": "uuid", "v": "hex-with-dashes"}``
``Decimal``             ``{"__petiole__": "decimal", "v": "1.10"}`` (exact)
``bytes``/``bytearray`` ``{"__petiole__": "bytes", "v": base64}`` (comes back as bytes)
``set``/``frozenset``   ``{"__petiole__": "set"|"frozenset", "v": [...]}``
``tuple``               a JSON array (comes back as a ``list``)
======================  =============================================

A dict whose only keys are ``__petiole__`` and ``v`` is reserved for these tags.
Anything else (arbitrary objects) raises :class:`~petiole.errors.SerializationError`
naming the type, rather than being silently turned into a string.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import json.encoder
import pickle
import uuid
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from petiole.errors import SerializationError
from petiole.hash_flooding import frozenset_from_untrusted, set_from_untrusted

TAG = "__petiole__"


@runtime_checkable
class Serializer(Protocol):
    """Registered through ``petiole_serializers``; looked up by ``name`` in config
    and by ``content_type`` on the wire."""

    name: str
    content_type: str

    def dumps(self, value: Any) -> bytes:
        """Serialize; raise :class:`SerializationError` naming what could not be."""
        ...

    def loads(self, data: bytes) -> Any:
        """Deserialize; raise :class:`SerializationError` on malformed input."""
        ...


def _tagged(kind: str, value: Any) -> dict[str, Any]:
    return {TAG: kind, "v": value}


def _encode_default(value: Any) -> Any:
    # datetime before date: datetime is a date subclass.
    if isinstance(value, dt.datetime):
        return _tagged("datetime", value.isoformat())
    if isinstance(value, dt.date):
        return _tagged("date", value.isoformat())
    if isinstance(value, dt.time):
        return _tagged("time", value.isoformat())
    if isinstance(value, dt.timedelta):
        return _tagged("timedelta", value.total_seconds())
    if isinstance(value, uuid.UUID):
        return _tagged("uuid", str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _tagged("bytes", base64.b64encode(bytes(value)).decode("ascii"))
    if isinstance(value, frozenset):
        return _tagged("frozenset", list(value))
    if isinstance(value, set):
        return _tagged("set", list(value))
    # Last, and imported here: decimal (~0.3 MB) is loaded by the programs that make
    # Decimals, not by every process that serializes on the chance of one.
    from decimal import Decimal

    if isinstance(value, Decimal):
        return _tagged("decimal", str(value))
    raise SerializationError(
        f"the JSON serializer cannot encode a {type(value).__module__}.{type(value).__qualname__}"
        " (pass plain data, or opt in to another serializer)"
    )


def _decimal(value: Any) -> Any:
    from decimal import Decimal  # on the first one received: see _encode_default

    return Decimal(value)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(seconds=v),
    "uuid": uuid.UUID,
    "decimal": _decimal,
    "bytes": lambda v: base64.b64decode(v.encode("ascii")),
    # A sender chooses the hashes of ints, UUIDs and decimals: see petiole.hash_flooding.
    "set": set_from_untrusted,
    "frozenset": frozenset_from_untrusted,
}


def _decode_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 2 and TAG in obj and "v" in obj:
        kind = obj[TAG]
        decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
        if decoder is not None:
            try:
                return decoder(obj["v"])
            except SerializationError:  # already says what was refused
                raise
            except Exception as exc:  # each decoder fails its own way (ValueError, ...)
                raise SerializationError(
                    f"bad {kind!r} value {_preview(obj['v'])}: {type(exc).__name__}: {exc}"
                ) from exc
    return obj


def _preview(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def compact_json_encoder(
    default: Callable[[Any], Any] | None = None, *, catch_cycles: bool = True
) -> Callable[[Any], str]:
    """``JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=default).encode``
    without its two Python frames per call: json's C encoder, called directly.
    ``catch_cycles`` makes it per call with a fresh dict of the containers being
    encoded, as json does (a cycle is a ``ValueError``); without, it is made once
    and a cycle fails as nesting too deep (``RecursionError``): for values that
    are plain data by construction. ``JSONEncoder.encode`` where there is no C
    encoder."""
    python_encoder = json.JSONEncoder(
        default=default, separators=(",", ":"), ensure_ascii=False, allow_nan=True
    )
    # Not in typeshed's stub of json.encoder: an implementation detail, hence the fallback.
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return python_encoder.encode
    args = (python_encoder.default, json.encoder.encode_basestring, None, ":", ",")
    if catch_cycles:
        return lambda value: "".join(make({}, *args, False, False, True)(value, 0))
    encode = make(None, *args, False, False, True)
    return lambda value: "".join(encode(value, 0))


# Built once: json.dumps and json.loads given options build a new encoder or
# decoder on every call, a few µs each, twice per task.
_encode = compact_json_encoder(_encode_default)
_decode = json.JSONDecoder(object_hook=_decode_hook).decode


class JsonSerializer:
    name = "json"
    content_type = "application/json"

    def dumps(self, value: Any) -> bytes:
        try:
            return _encode(value).encode()
        except SerializationError:
            raise
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"cannot encode as JSON: {exc}") from exc
        except RecursionError as exc:
            raise SerializationError("cannot encode as JSON: nested too deeply") from exc

    def loads(self, data: bytes) -> Any:
        """The value of a JSON body; tagged objects become their Python types.

        Raises :class:`SerializationError` for malformed JSON, a bad tagged value, or
        a tagged set or frozenset whose elements were crafted to share one hash
        (:func:`~petiole.hash_flooding.check_hash_collisions`), which would take
        time quadratic in its size to build. Object keys are strings, whose
        hashes are salted per process: a dict needs no such check.
        """
        try:
            # Read as json.loads reads bytes (UTF-8, -16 or -32, told by their start).
            if data[:1] == b"[" and data[1:2] != b"\0":  # UTF-8, no BOM: what senders write
                return _decode(data.decode("utf-8", "surrogatepass"))
            return _decode(data.decode(json.detect_encoding(data), "surrogatepass"))
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise SerializationError(f"malformed JSON body: {exc}") from exc
        except RecursionError as exc:
            raise SerializationError("malformed JSON body: nested too deeply") from exc


class PickleSerializer:
    """Python's pickle: any picklable object, and any code execution the sender
    wants. Only for clusters where every producer is trusted; a worker refuses
    it unless ``accept_content`` lists ``pickle``."""

    name = "pickle"
    content_type = "application/x-python-pickle"

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise SerializationError(f"cannot pickle: {exc}") from exc
        except RecursionError as exc:
            raise SerializationError("cannot pickle: nested too deeply") from exc

    def loads(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)  # noqa: S301 - only reached when the user accepts pickle
        except Exception as exc:
            raise SerializationError(f"malformed pickle body: {exc}") from exc
