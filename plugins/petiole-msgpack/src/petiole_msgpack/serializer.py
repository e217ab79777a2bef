"""The msgpack serializer: ``task_serializer = "msgpack"``, content type
``application/x-msgpack`` (Celery's, so mixed clusters name it alike).

It round-trips everything the core's JSON serializer does: plain data, and
``datetime`` (naive or aware, to the microsecond, with its UTC offset), ``date``,
``time``, ``timedelta``, ``UUID``, ``Decimal`` (exact), ``bytes``, ``set``,
``frozenset`` and integers beyond 64 bits, as msgpack extension types whose codes
and byte layouts :mod:`petiole_msgpack.extensions` documents. Tuples come back as
lists, except as dict keys and set elements, where they come back as tuples
(a list cannot be either). Anything else raises
:class:`~petiole.plugin_api.SerializationError` naming its type.

**Dict keys** keep their type: ``{1: "a"}`` comes back with the int key (JSON
would turn it into ``"1"``). msgpack ≥ 1.0 refuses keys other than ``str`` and
``bytes`` by default (``strict_map_key``) because of hash-collision attacks;
this serializer turns that off, since int keys are common in task arguments,
and defends against those attacks itself (:mod:`petiole_msgpack._containers`):
a document whose keys are all ``str`` or ``bytes`` (salted hashes), the common
case, is read by msgpack alone with ``strict_map_key`` on; any other is read
again, each map checked by a Python call.

**Untrusted input.** ``loads`` builds only the types above and never runs code.
Whatever the bytes, it returns a value or raises ``SerializationError``; it does
not allocate more than a small multiple of the input:

* malformed, truncated, or followed by trailing bytes: refused;
* a length (of a string, array, map, extension) that claims more than the input
  holds: refused before anything is built, since the document is first walked
  without building anything (``Unpacker.skip``); msgpack's C unpacker would
  otherwise allocate each array as long as it claims, 1024 levels deep;
* nested deeper than msgpack's limit (1024 levels for the C unpacker, Python's
  recursion limit for the pure-Python one), or sets nested more than
  :data:`MAX_SET_NESTING` deep: refused;
* an extension code not in the table, or a payload that does not follow its
  layout: refused, naming the code;
* a map or set whose keys were crafted to share one hash: refused.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import msgpack
from msgpack import ExtraData, ExtType, FormatError, OutOfData, StackError, fallback

from petiole.plugin_api import SerializationError
from petiole_msgpack import extensions
from petiole_msgpack._containers import checked_map, checked_set

#: How deep sets (and frozensets) may nest inside one another. Each level is a
#: msgpack document inside an extension, unpacked by a call of its own, so the
#: depth is bounded here rather than by msgpack's own nesting limit.
MAX_SET_NESTING = 8

_SET_CODES = (extensions.SET, extensions.FROZENSET)


class MsgpackSerializer:
    """A :class:`~petiole.plugin_api.Serializer` writing MessagePack (see the module doc).

    ``pure_python=True`` uses msgpack's pure-Python implementation instead of its
    C extension (the tests run both); :attr:`implementation` says which is in use.
    """

    name = "msgpack"
    content_type = "application/x-msgpack"

    def __init__(self, *, pure_python: bool = False) -> None:
        # msgpack itself falls back to pure Python when its C extension is missing.
        self._packer = fallback.Packer if pure_python else msgpack.Packer
        self._unpacker = fallback.Unpacker if pure_python else msgpack.Unpacker
        self._unpackb = fallback.unpackb if pure_python else msgpack.unpackb
        self.implementation = "python" if self._packer is fallback.Packer else "c"
        self._local = threading.local()  # the set nesting depth of this thread's call

    def __repr__(self) -> str:
        return f"MsgpackSerializer(implementation={self.implementation!r})"

    # -- writing ---------------------------------------------------------------------

    def dumps(self, value: Any) -> bytes:
        try:
            return self._pack(value)
        except SerializationError:
            raise
        except RecursionError as exc:
            raise SerializationError("cannot encode as msgpack: nested too deeply") from exc
        except (TypeError, ValueError, OverflowError) as exc:
            problem = "nested too deeply" if "recursion" in str(exc) else str(exc)
            raise SerializationError(f"cannot encode as msgpack: {problem}") from exc

    def _pack(self, value: Any) -> bytes:
        # A packer per call: packers hold a buffer, and a set's elements are packed
        # by a nested call while the outer packer is mid-value.
        packer = self._packer(default=self._default, use_bin_type=True, datetime=False)
        return packer.pack(value)

    def _default(self, value: Any) -> ExtType:
        """msgpack calls this for each value it has no type for."""
        ext = extensions.encode(value)
        if ext is not None:
            return ext
        if isinstance(value, (set, frozenset)):
            code = extensions.FROZENSET if isinstance(value, frozenset) else extensions.SET
            with self._set_level():
                return ExtType(code, self._pack(list(value)))
        kind = type(value)
        raise SerializationError(
            f"the msgpack serializer cannot encode a {kind.__module__}.{kind.__qualname__}"
            " (pass plain data, dates, UUIDs, decimals, bytes or sets)"
        )

    # -- reading ---------------------------------------------------------------------

    def loads(self, data: bytes) -> Any:
        return self._unpack(data, "body")

    def _unpack(self, data: bytes, what: str) -> Any:
        """One whole msgpack document; every failure a SerializationError."""
        try:
            self._check_complete(data)
            try:
                # Most maps have only str keys: msgpack builds those dicts itself,
                # refusing (strict_map_key) the first key of another type...
                return self._unpackb(data, strict_map_key=True, **self._options(data))
            except ValueError:
                # ... and then (or on bad input, which fails here again) every map goes
                # through the hash-collision guard, a Python call per map.
                return self._unpackb(
                    data, strict_map_key=False, object_pairs_hook=checked_map, **self._options(data)
                )
        except SerializationError:
            raise
        except Exception as exc:
            _refuse(exc, what, len(data))

    def _options(self, data: bytes) -> dict[str, Any]:
        size = len(data)
        return {
            "raw": False,
            "timestamp": 3,  # msgpack's own timestamp type: an aware datetime in UTC
            "ext_hook": self._ext_hook,
            # What unpackb defaults to in msgpack >= 1.0, stated rather than assumed.
            "max_str_len": size,
            "max_bin_len": size,
            "max_array_len": size,
            "max_map_len": size // 2,
            "max_ext_len": size,
        }

    def _check_complete(self, data: bytes) -> None:
        """Walk the document without building anything: truncation, a length
        claiming more than the input, trailing bytes and excess nesting are found
        before unpackb allocates a list as long as each array header claims."""
        unpacker = self._unpacker(max_buffer_size=max(len(data), 1))
        unpacker.feed(data)
        unpacker.skip()
        if unpacker.tell() != len(data):
            raise ExtraData(None, data[unpacker.tell() :])

    def _ext_hook(self, code: int, payload: bytes) -> Any:
        decoder = extensions.DECODERS.get(code)
        if decoder is not None:
            try:
                return decoder(payload)
            except (ValueError, OverflowError) as exc:
                raise SerializationError(
                    f"bad msgpack extension {code} ({extensions.NAMES[code]}) payload: {exc}"
                ) from exc
        if code in _SET_CODES:
            with self._set_level():
                items = self._unpack(payload, f"extension {code} ({extensions.NAMES[code]})")
            if items.__class__ is not list:
                raise SerializationError(
                    f"bad msgpack extension {code} ({extensions.NAMES[code]}) payload: "
                    f"an array of elements expected, not a {type(items).__name__}"
                )
            return checked_set(items, frozen=code == extensions.FROZENSET)
        known = ", ".join(map(str, sorted(extensions.NAMES)))
        raise SerializationError(
            f"unknown msgpack extension type {code} ({len(payload)} bytes): petiole-msgpack "
            f"reads {known} and -1 (msgpack's timestamp); is the producer another program?"
        )

    @contextmanager
    def _set_level(self) -> Iterator[None]:
        depth: int = getattr(self._local, "set_depth", 0)
        if depth >= MAX_SET_NESTING:
            raise SerializationError(f"sets nested more than {MAX_SET_NESTING} deep")
        self._local.set_depth = depth + 1
        try:
            yield
        finally:
            self._local.set_depth = depth


def _refuse(exc: Exception, what: str, size: int) -> NoReturn:
    """Translate what msgpack (or Python, beneath it) raised into one clear error."""
    if isinstance(exc, ExtraData):
        extra = getattr(exc, "extra", b"")  # msgpack sets it; its stubs omit it
        problem = f"{len(extra)} trailing bytes after the document"
    elif isinstance(exc, OutOfData) or "incomplete input" in str(exc):
        problem = f"truncated: the {size} bytes end inside a value"
    elif isinstance(exc, (StackError, RecursionError)):
        problem = "nested too deeply"
    elif isinstance(exc, UnicodeDecodeError):
        problem = f"a string is not valid UTF-8 ({exc.reason} at byte {exc.start})"
    elif "exceeds max_" in str(exc):
        problem = f"a length claims more than the {size} bytes of input hold ({exc})"
    elif "timestamp" in str(exc).lower():  # msgpack decodes its own type, without ext_hook
        problem = f"bad msgpack extension -1 (timestamp) payload: {exc}"
    elif isinstance(exc, FormatError):
        problem = f"not msgpack ({exc})"
    elif isinstance(exc, (ValueError, TypeError, OverflowError)):
        problem = f"{type(exc).__name__}: {exc}"
    else:  # msgpack documents no other exception; one is a bug to see, not to hide
        raise exc
    raise SerializationError(f"malformed msgpack {what}: {problem}") from exc
