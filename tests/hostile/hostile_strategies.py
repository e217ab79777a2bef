"""Hypothesis strategies for hostile messages: JSON values (tagged ones and
deep nesting included), header blocks that are structured but wrong, bodies,
and whole framed messages as a broker would hand them to a worker."""

from __future__ import annotations

import json
import pickle
import struct
import uuid
from typing import Any

from hostile_kit import JSON, PICKLE
from hypothesis import strategies as st

from petiole.envelope import HEADER_TYPES, MAGIC
from petiole.serializers import _DECODERS, TAG

TAGS = sorted(_DECODERS)
_FLOATS = st.floats(allow_nan=True, allow_infinity=True)
_INTS = st.integers() | st.integers(min_value=-(2**70), max_value=2**70)

json_scalars = st.none() | st.booleans() | _INTS | _FLOATS | st.text(max_size=20)


def _tagged(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``{"__petiole__": tag, "v": anything}``: mostly real tags, sometimes not."""
    tags = st.sampled_from(TAGS) | st.text(max_size=10)
    return st.builds(lambda tag, v: {TAG: tag, "v": v}, tags, values)


json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
        | _tagged(children)
    ),
    max_leaves=12,
)

# The same without tagged objects: arguments a task can actually be called with.
plain_json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def nested_text(depth: int, opener: str = "[") -> str:
    """JSON text nested ``depth`` deep: ``[[[...]]]`` or ``{"a":{"a":...}}``."""
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "0" + "}" * depth


deep_json_text = st.builds(
    nested_text, st.integers(min_value=1, max_value=200_000), st.sampled_from(["[", "{"])
)


def json_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True, ensure_ascii=False)


@st.composite
def _value_text(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 7)) == 0:
        return draw(deep_json_text)
    return json_text(draw(json_values))


# JSON text of a value: usually a generated value, sometimes nested far too deep.
value_text = _value_text()


def _object_text(items: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in items) + "}"


_KNOWN = sorted([*HEADER_TYPES, "content_type", "content_encoding"])


@st.composite
def header_texts(draw: st.DrawFn) -> str:
    """A header block that is a JSON object built from known and unknown names,
    required ones usually present, values of any type (sometimes the right one)."""
    items: list[tuple[str, str]] = []
    plausible = {
        "protocol": st.just("1"),
        "id": st.uuids().map(lambda u: json_text(str(u))),
        "task": st.sampled_from(['"hostile.echo"', '"hostile.missing"']),
        "content_type": st.sampled_from([f'"{JSON}"', f'"{PICKLE}"', '"text/plain"', '""']),
        "sent_at": st.just("0"),
    }
    for name, strategy in plausible.items():
        if draw(st.integers(0, 9)):  # mostly present and plausible
            items.append((name, draw(strategy)))
    names = st.sampled_from(_KNOWN) | st.text(max_size=10)
    for name in draw(st.lists(names, max_size=6)):
        items.append((name, draw(value_text)))
    return _object_text(items)


def frame(header: bytes, body: bytes, *, declared: int | None = None) -> bytes:
    """The canonical framing, with a header length that may lie."""
    length = len(header) if declared is None else declared
    return MAGIC + struct.pack(">I", length) + header + body


bodies = st.one_of(
    st.tuples(
        st.lists(json_values, max_size=3), st.dictionaries(st.text(max_size=5), json_values)
    ).map(lambda ak: json_text(list(ak)).encode()),
    value_text.map(str.encode),
    st.binary(max_size=64),
    json_values.map(lambda v: pickle.dumps([[v], {}])),
)


@st.composite
def framed_messages(draw: st.DrawFn) -> bytes:
    """Bytes a worker may be handed: garbage, broken framing, or well-framed
    messages with structured-but-wrong headers and any body."""
    kind = draw(st.sampled_from(["garbage", "bad-length", "text-header", "structured"]))
    if kind == "garbage":
        return draw(st.binary(max_size=64) | st.binary(max_size=8).map(lambda b: MAGIC + b))
    body = draw(bodies)
    if kind == "text-header":
        header = draw(value_text | st.text(max_size=40)).encode("utf-8", "surrogatepass")
        return frame(header, body)
    header = draw(header_texts()).encode("utf-8", "surrogatepass")
    if kind == "bad-length":
        return frame(header, body, declared=draw(st.integers(0, 2**32 - 1)))
    return frame(header, body)


@st.composite
def runnable_headers(draw: st.DrawFn) -> dict[str, Any]:
    """Headers of the right types for a registered task, with hostile values in
    every optional header (canvas, limits, times); never an ETA in the future,
    which would rightly keep the message waiting in the broker."""
    headers: dict[str, Any] = {
        "protocol": draw(st.integers(max_value=1)),
        "id": draw(st.uuids().map(str) | st.text(max_size=20)),
        "task": "hostile.echo",
        "sent_at": draw(_FLOATS | _INTS),
    }
    past = st.floats(max_value=0) | st.just(float("nan")) | st.integers(max_value=0)
    optional: dict[str, st.SearchStrategy[Any]] = {
        "retries": _INTS,
        "eta": st.none() | past,
        "expires": st.none() | _FLOATS | _INTS,
        "root_id": st.none() | st.text(max_size=10),
        "parent_id": st.none() | st.text(max_size=10),
        "group_id": st.none() | st.text(max_size=10),
        "group_index": st.none() | _INTS,
        "priority": st.none() | _INTS,
        "callbacks": st.none() | st.lists(json_values | _signatures(), max_size=2),
        "errbacks": st.none() | st.lists(json_values | _signatures(), max_size=2),
        "chain": st.none() | st.lists(json_values | _signatures(), max_size=2),
        "chord": st.none() | st.dictionaries(st.sampled_from(["id", "size", "body"]), json_values),
        "trace": st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=2),
        "reply_to": st.none() | st.text(max_size=10),
        "time_limit": st.none() | st.lists(st.none() | _FLOATS | _INTS, max_size=3),
        "origin": st.none() | st.text(max_size=10),
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), max_size=4, unique=True)):
        headers[name] = draw(optional[name])
    return headers


def _signatures() -> st.SearchStrategy[dict[str, Any]]:
    """Signature-shaped objects with hostile fields."""
    return st.fixed_dictionaries(
        {"task": st.sampled_from(["hostile.echo", "hostile.missing"]) | json_values},
        optional={
            "args": json_values,
            "kwargs": json_values,
            "immutable": json_values,
            "subtask_type": st.sampled_from([None, "chain", "group", "chord"]) | json_values,
            "options": st.fixed_dictionaries(
                {}, optional={"task_id": json_values, "countdown": json_values}
            ),
        },
    )


_odd_content_types = st.sampled_from([PICKLE, "text/plain", ""]) | st.text(max_size=12)
_args_kwargs = st.tuples(
    st.lists(plain_json_values, max_size=3),
    st.dictionaries(st.text(max_size=5), plain_json_values, max_size=3),
).map(lambda ak: json_text(list(ak)).encode())


@st.composite
def worker_messages(draw: st.DrawFn) -> bytes:
    """What the end-to-end fuzz sends: one in five is framing fuzz; the rest are
    well-framed messages for a registered task with hostile headers, mostly a
    JSON body of [args, kwargs] (so most of them run), sometimes anything."""
    if draw(st.integers(0, 4)) == 0:
        return draw(framed_messages())
    headers = draw(runnable_headers())
    odd = draw(st.integers(0, 9)) == 0
    headers["content_type"] = draw(_odd_content_types) if odd else JSON
    headers["content_encoding"] = "gzip" if draw(st.integers(0, 19)) == 0 else "identity"
    body = draw(bodies) if draw(st.integers(0, 4)) == 0 else draw(_args_kwargs)
    return frame(json_text(headers).encode("utf-8", "surrogatepass"), body)


def message_id() -> str:
    return str(uuid.uuid4())
