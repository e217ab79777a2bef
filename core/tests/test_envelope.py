from __future__ import annotations

import json

import pytest

from petiole.envelope import MAGIC, PROTOCOL_VERSION, Envelope, peek_header, task_headers
from petiole.errors import ProtocolError


def _envelope(**headers: object) -> Envelope:
    base = {"protocol": PROTOCOL_VERSION, "id": "t-1", "task": "proj.add", "sent_at": 1.0}
    base.update(headers)
    return Envelope(base, b"[[1,2],{}]", "application/json")


def test_canonical_framing_round_trips_headers_body_and_content_type() -> None:
    original = _envelope(priority=3, eta=12.5, trace={"traceparent": "00-ab"})
    parsed = Envelope.from_bytes(original.to_bytes())
    assert parsed == original
    assert parsed.content_encoding == "identity"


def test_headers_are_readable_without_the_body() -> None:
    data = _envelope().to_bytes()
    length = int.from_bytes(data[4:8], "big")
    headers = json.loads(data[8 : 8 + length])
    assert headers["task"] == "proj.add"
    assert headers["content_type"] == "application/json"


def test_body_bytes_are_kept_exactly() -> None:
    body = bytes(range(256))
    envelope = Envelope(dict(_envelope().headers), body, "application/octet-stream")
    assert Envelope.from_bytes(envelope.to_bytes()).body == body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "bad magic"),
        (b"XXXX\x00\x00\x00\x02{}", "bad magic"),
        (b"PET1\x00\x00\x10\x00{}", "truncated"),
        (b"PET1\x00\x00\x00\x03{x}", "not valid JSON"),
        (b"PET1\x00\x00\x00\x02[]", "JSON object"),
    ],
)
def test_malformed_framing_is_a_protocol_error(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        Envelope.from_bytes(data)


def test_missing_required_header_is_named() -> None:
    head = json.dumps({"protocol": 1, "task": "x", "content_type": "application/json"}).encode()
    with pytest.raises(ProtocolError, match="'id'"):
        Envelope.from_parts(head, b"")


def test_header_of_the_wrong_type_is_named_with_its_value() -> None:
    bad = _envelope(retries="three")
    with pytest.raises(ProtocolError, match="'retries' must be int, got str 'three'"):
        Envelope.from_bytes(bad.to_bytes())


def test_boolean_where_a_number_belongs_is_refused() -> None:
    with pytest.raises(ProtocolError, match="'priority'"):
        Envelope.from_bytes(_envelope(priority=True).to_bytes())


def test_a_newer_protocol_version_is_refused_with_advice() -> None:
    with pytest.raises(ProtocolError, match="upgrade the worker"):
        Envelope.from_bytes(_envelope(protocol=PROTOCOL_VERSION + 1).to_bytes())


def test_unknown_headers_are_carried_through() -> None:
    parsed = Envelope.from_bytes(_envelope(x_tenant="acme").to_bytes())
    assert parsed.headers["x_tenant"] == "acme"


def test_missing_content_type_is_refused() -> None:
    head = json.dumps({"protocol": 1, "id": "a", "task": "x"}).encode()
    with pytest.raises(ProtocolError, match="content_type"):
        Envelope.from_parts(head, b"")


def test_typed_header_views_read_what_the_producer_set() -> None:
    envelope = Envelope(
        {
            "protocol": 1,
            "id": "t1",
            "task": "proj.add",
            "retries": 2,
            "eta": 10,
            "expires": 20.5,
            "priority": 7,
            "root_id": "r",
            "parent_id": "p",
            "group_id": "g",
            "time_limit": [None, 30],
        },
        b"[[],{}]",
        "application/json",
    )
    assert (envelope.retries, envelope.eta, envelope.expires) == (2, 10.0, 20.5)
    assert (envelope.priority, envelope.root_id, envelope.parent_id) == (7, "r", "p")
    assert envelope.group_id == "g"
    assert envelope.time_limits == (None, 30.0)


def test_a_plain_send_leaves_null_headers_out_and_keeps_the_protocols_own() -> None:
    plain = task_headers("t1", "proj.add", sent_at=5.0)
    assert set(plain) == {"protocol", "id", "task", "retries", "root_id", "origin", "sent_at"}
    assert (plain["root_id"], plain["retries"]) == ("t1", 0)
    timed = task_headers("t1", "proj.add", sent_at=5.0, eta=9.0, priority=0, parent_id="p")
    assert (timed["eta"], timed["priority"], timed["parent_id"]) == (9.0, 0, "p")


def test_a_user_header_never_stands_in_for_the_protocols_own() -> None:
    """A user header named like one the protocol owns is dropped, even where the
    protocol leaves its own out as null (a user's ``eta`` would delay the task)."""
    extra = {"eta": 99.0, "priority": 9, "id": "forged", "x_tenant": "acme"}
    headers = task_headers("t1", "proj.add", sent_at=5.0, extra=extra)
    assert "eta" not in headers
    assert "priority" not in headers
    assert (headers["id"], headers["x_tenant"]) == ("t1", "acme")


def test_typed_header_views_default_when_headers_are_absent() -> None:
    envelope = Envelope({"protocol": 1, "id": "t1", "task": "x"}, b"", "application/json")
    assert (envelope.retries, envelope.eta, envelope.expires, envelope.priority) == (
        0,
        None,
        None,
        None,
    )
    assert envelope.time_limits == (None, None)


def test_peek_header_reads_one_header_and_treats_anything_malformed_as_absent() -> None:
    framed = Envelope(
        {"protocol": 1, "id": "t1", "task": "x", "x_group": "customer-42"}, b"[]", "a/b"
    ).to_bytes()
    assert peek_header(framed, "x_group") == "customer-42"
    assert peek_header(framed, "missing") is None
    assert peek_header(b"not framed at all", "x_group") is None
    deep = b"[" * 100_000 + b"]" * 100_000
    assert peek_header(MAGIC + len(deep).to_bytes(4, "big") + deep, "x_group") is None
