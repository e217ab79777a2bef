"""SQS-specific behaviour beyond the conformance suite, against moto's real server.

Only faults moto cannot produce (a batch entry failing on the server's side)
are simulated, by wrapping one boto3 method.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from petiole_sqs._messages import GROUP_HEADER, group_header
from petiole_sqs.testing import broker_url
from petiole_sqs.transport import Outgoing, PublishBatchError, SqsTransport, create_transport

from petiole.envelope import Envelope
from petiole.errors import MessageTooLarge, TransportError
from petiole.testing import unique_name
from petiole.transport import Delivery

LONG_LEASE_S = 60.0


@pytest.fixture
def make_transport(sqs_endpoint: str) -> Iterator[Callable[..., SqsTransport]]:
    made: list[SqsTransport] = []

    def make(**options: object) -> SqsTransport:
        transport = create_transport(broker_url(sqs_endpoint, **options), {})
        assert isinstance(transport, SqsTransport)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


@pytest.fixture
def transport(make_transport: Callable[..., SqsTransport]) -> SqsTransport:
    return make_transport()


@pytest.fixture
def queue() -> str:
    return unique_name("petiole-sqs")


def reserve_one(transport: SqsTransport, queue: str, *, lease_s: float = LONG_LEASE_S) -> Delivery:
    got = transport.reserve([queue], max_messages=1, wait_s=5, lease_s=lease_s)
    assert len(got) == 1, got
    return got[0]


def drain(transport: SqsTransport, queue: str, count: int) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + 15
    while len(got) < count and time.monotonic() < deadline:
        batch = transport.reserve([queue], max_messages=10, wait_s=1, lease_s=LONG_LEASE_S)
        for delivery in batch:
            transport.ack(delivery)
        got += batch
    return got


def envelope_bytes(task_id: str, **headers: Any) -> bytes:
    all_headers = {"protocol": 1, "id": task_id, "task": "t", "sent_at": time.time(), **headers}
    return Envelope(all_headers, b"[[],{}]", "application/json").to_bytes()


# -- leases -----------------------------------------------------------------------


def test_killed_consumers_message_reappears_with_its_receive_count(
    make_transport: Callable[..., SqsTransport], queue: str
) -> None:
    victim, survivor = make_transport(), make_transport()
    victim.publish(queue, b"work", message_id="task-1")
    first = reserve_one(victim, queue, lease_s=1)
    victim.close()  # dies holding the lease: no ack, no nack

    again = survivor.reserve([queue], max_messages=1, wait_s=5, lease_s=LONG_LEASE_S)

    assert [(d.payload, d.delivery_count, d.message_id) for d in again] == [
        (b"work", first.delivery_count + 1, "task-1")
    ]
    survivor.ack(again[0])
    assert survivor.size(queue) == 0


def test_lease_is_rounded_up_to_whole_seconds(transport: SqsTransport, queue: str) -> None:
    transport.publish(queue, b"m")
    before = time.time()
    delivery = reserve_one(transport, queue, lease_s=1.2)

    assert delivery.lease_expires_at >= before + 2


# -- batches ----------------------------------------------------------------------


def test_publish_many_sends_every_message_in_batches(transport: SqsTransport, queue: str) -> None:
    calls: list[int] = []
    send_batch = transport._sqs.client.send_message_batch

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["Entries"]))
        return send_batch(**kwargs)

    transport._sqs.client.send_message_batch = counting  # type: ignore[method-assign]
    transport.publish_many(queue, [Outgoing(f"m{i}".encode(), f"t{i}") for i in range(25)])

    assert calls == [10, 10, 5]
    got = drain(transport, queue, 25)
    assert sorted(d.payload for d in got) == sorted(f"m{i}".encode() for i in range(25))
    assert {d.message_id for d in got} == {f"t{i}" for i in range(25)}


def test_publish_many_keeps_each_request_within_the_size_limit(
    transport: SqsTransport, queue: str
) -> None:
    limit = transport.capabilities.max_message_bytes
    assert limit is not None
    calls: list[int] = []
    send_batch = transport._sqs.client.send_message_batch

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["Entries"]))
        return send_batch(**kwargs)

    transport._sqs.client.send_message_batch = counting  # type: ignore[method-assign]
    transport.publish_many(queue, [Outgoing(b"x" * (limit * 7 // 10)) for _ in range(3)])

    assert calls == [1, 1, 1]  # two such bodies together exceed what one request may carry
    assert transport.size(queue) == 3


def test_publish_many_retries_entries_that_failed_on_the_server(
    transport: SqsTransport, queue: str
) -> None:
    send_batch = transport._sqs.client.send_message_batch
    attempts: list[list[str]] = []

    def flaky(**kwargs: Any) -> Any:
        entries = kwargs["Entries"]
        attempts.append([e["Id"] for e in entries])
        if len(attempts) > 1:
            return send_batch(**kwargs)
        # Send the first half for real; report the rest as failed on SQS's side.
        sent = send_batch(**{**kwargs, "Entries": entries[:2]})
        sent["Failed"] = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in entries[2:]
        ]
        return sent

    transport._sqs.client.send_message_batch = flaky  # type: ignore[method-assign]
    transport.publish_many(queue, [Outgoing(f"m{i}".encode()) for i in range(4)])

    assert attempts == [["0", "1", "2", "3"], ["2", "3"]]
    assert sorted(d.payload for d in drain(transport, queue, 4)) == [b"m0", b"m1", b"m2", b"m3"]


def test_publish_many_reports_messages_sqs_refused(transport: SqsTransport, queue: str) -> None:
    send_batch = transport._sqs.client.send_message_batch

    def refusing(**kwargs: Any) -> Any:
        entries = kwargs["Entries"]
        sent = send_batch(**{**kwargs, "Entries": entries[:-1]})
        sent["Failed"] = [
            {"Id": entries[-1]["Id"], "SenderFault": True, "Code": "InvalidMessageContents"}
        ]
        return sent

    transport._sqs.client.send_message_batch = refusing  # type: ignore[method-assign]
    with pytest.raises(PublishBatchError, match="1 of 3 messages") as info:
        transport.publish_many(queue, [Outgoing(f"m{i}".encode()) for i in range(3)])

    assert info.value.failed == [2]
    assert transport.size(queue) == 2


def test_reserve_takes_up_to_ten_per_receive_and_more_across_calls(
    transport: SqsTransport, queue: str
) -> None:
    transport.publish_many(queue, [Outgoing(f"m{i}".encode()) for i in range(15)])

    first = transport.reserve([queue], max_messages=15, wait_s=5, lease_s=LONG_LEASE_S)

    assert 1 <= len(first) <= 10
    assert len(first) + len(drain(transport, queue, 15 - len(first))) == 15


# -- limits ------------------------------------------------------------------------


def test_message_too_large_names_size_and_limit(transport: SqsTransport, queue: str) -> None:
    limit = transport.capabilities.max_message_bytes
    assert limit == (262_144 - 4096) // 4 * 3

    with pytest.raises(MessageTooLarge, match=f"{limit + 1} bytes .* limit of {limit} bytes"):
        transport.publish(queue, b"x" * (limit + 1))


def test_message_size_limit_option_sets_the_capability(
    make_transport: Callable[..., SqsTransport],
) -> None:
    transport = make_transport(message_size_limit_bytes=1_048_576)

    assert transport.capabilities.max_message_bytes == (1_048_576 - 4096) // 4 * 3


def test_capabilities_declare_what_sqs_cannot_do(transport: SqsTransport) -> None:
    caps = transport.capabilities
    assert (caps.priorities, caps.fifo, caps.queue_preference) == (False, False, False)
    assert (caps.max_delay_s, caps.min_lease_s) == (900.0, 1.0)
    assert not caps.deduplicates_copies  # a standard queue keeps every copy


def test_delay_beyond_max_delay_is_clamped_to_it(
    make_transport: Callable[..., SqsTransport], queue: str
) -> None:
    transport = make_transport(max_delay_s=1)
    start = time.monotonic()
    transport.publish(queue, b"later", delay_s=3600)

    delivery = reserve_one(transport, queue)
    assert delivery.payload == b"later"
    assert time.monotonic() - start < 5


# -- names and errors ----------------------------------------------------------------


def test_queue_name_sqs_cannot_hold_is_refused(transport: SqsTransport) -> None:
    with pytest.raises(TransportError, match="letters, digits"):
        transport.publish("mail.high", b"m")


def test_queue_prefix_names_the_sqs_queue(
    make_transport: Callable[..., SqsTransport], queue: str
) -> None:
    transport = make_transport(queue_prefix="app-")
    transport.publish(queue, b"m")

    client = transport._sqs.client
    assert client.get_queue_url(QueueName=f"app-{queue}")["QueueUrl"]


def test_missing_queue_without_create_queues_is_an_error_naming_it(
    make_transport: Callable[..., SqsTransport], queue: str
) -> None:
    transport = make_transport(create_queues=False)

    with pytest.raises(TransportError, match=f"{queue}.*create_queues is off"):
        transport.publish(queue, b"m")
    assert transport.size(queue) == 0
    assert transport.dead_letters(queue) == []


def test_unreachable_endpoint_raises_transport_error_without_credentials(
    aws_env: None,
) -> None:
    from petiole.testing.servers import free_port

    url = broker_url(f"http://127.0.0.1:{free_port()}")
    transport = create_transport(url, {})
    transport._sqs.client.meta.config.retries = {"max_attempts": 0}  # type: ignore[attr-defined]
    try:
        with pytest.raises(TransportError) as info:
            transport.publish(unique_name("petiole-sqs"), b"m")
    finally:
        transport.close()
    assert "petiole-test-secret" not in str(info.value)
    assert "petiole-test-key" not in str(info.value)
    assert "botocore" not in type(info.value).__module__


# -- dead letters --------------------------------------------------------------------


def test_dead_letter_keeps_task_id_and_requeue_restores_it(
    transport: SqsTransport, queue: str
) -> None:
    transport.publish(queue, b"poison", message_id="task-9")
    transport.dead_letter(reserve_one(transport, queue), reason="bad")

    assert transport.requeue_dead_letters(queue) == 1
    again = reserve_one(transport, queue)
    assert (again.payload, again.message_id, again.delivery_count) == (b"poison", "task-9", 1)


def test_listing_dead_letters_leaves_them_in_the_store(transport: SqsTransport, queue: str) -> None:
    for i in range(12):
        transport.publish(queue, f"m{i}".encode())
    for delivery in drain_without_ack(transport, queue, 12):
        transport.dead_letter(delivery, reason="r")

    assert len(transport.dead_letters(queue, limit=5)) == 5
    assert len(transport.dead_letters(queue)) == 12
    assert transport.purge_dead_letters(queue) == 12


def test_long_reason_is_truncated_not_refused(transport: SqsTransport, queue: str) -> None:
    transport.publish(queue, b"m")
    transport.dead_letter(reserve_one(transport, queue), reason="x" * 100_000)

    [dead] = transport.dead_letters(queue)
    assert dead.reason.endswith("[truncated]")
    assert len(dead.reason.encode()) <= 2048


def test_redrive_policy_moves_messages_received_too_often(
    make_transport: Callable[..., SqsTransport], queue: str
) -> None:
    transport = make_transport(max_receive_count=1)
    transport.publish(queue, b"crashes-its-worker")
    reserve_one(transport, queue, lease_s=1)  # never settled

    # The next receive finds it over maxReceiveCount: SQS moves it instead.
    assert transport.reserve([queue], max_messages=1, wait_s=3, lease_s=LONG_LEASE_S) == []
    [dead] = transport.dead_letters(queue)
    assert dead.payload == b"crashes-its-worker"
    assert "RedrivePolicy" in dead.reason


def drain_without_ack(transport: SqsTransport, queue: str, count: int) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + 15
    while len(got) < count and time.monotonic() < deadline:
        got += transport.reserve([queue], max_messages=10, wait_s=1, lease_s=LONG_LEASE_S)
    assert len(got) == count
    return got


def test_a_queue_deleted_behind_its_back_is_looked_up_and_created_again(
    transport: SqsTransport, queue: str
) -> None:
    transport.publish(queue, b"before")
    names = transport._queue(queue)
    client = transport._sqs.client
    client.delete_queue(QueueUrl=client.get_queue_url(QueueName=names.live)["QueueUrl"])
    with pytest.raises(TransportError, match="NonExistentQueue"):
        transport.publish(queue, b"lost with its queue")  # the cached URL, once
    transport.publish(queue, b"after")  # looked up again, and created (create_queues)
    assert [d.payload for d in drain(transport, queue, 1)] == [b"after"]


# -- FIFO queues ---------------------------------------------------------------------


def test_fifo_drops_an_identical_resend_but_not_a_changed_message_with_the_same_id(
    make_transport: Callable[..., SqsTransport], queue: str
) -> None:
    transport = make_transport(fifo=True)
    original = envelope_bytes("task-1")
    transport.publish(queue, original, message_id="task-1")
    transport.publish(queue, original, message_id="task-1")  # a retry after a lost reply
    retried = envelope_bytes("task-1", retries=1)
    transport.publish(queue, retried, message_id="task-1")

    assert transport.size(queue) == 2
    # So a worker must not hand a held message back as a copy (docs/worker.md).
    assert transport.capabilities.deduplicates_copies


def test_fifo_delivers_a_group_in_order(
    make_transport: Callable[..., SqsTransport], queue: str
) -> None:
    transport = make_transport(fifo=True)
    payloads = [envelope_bytes(f"t{i}", **{GROUP_HEADER: "customer-42"}) for i in range(5)]
    for i, payload in enumerate(payloads):
        transport.publish(queue, payload, message_id=f"t{i}")

    got = [d.payload for d in drain(transport, queue, 5)]
    assert got == payloads


def test_fifo_message_group_comes_from_the_header(
    make_transport: Callable[..., SqsTransport], queue: str
) -> None:
    transport = make_transport(fifo=True)
    transport.publish(queue, envelope_bytes("t1", **{GROUP_HEADER: "customer-42"}))

    response = transport._sqs.client.receive_message(
        QueueUrl=transport._sqs.client.get_queue_url(QueueName=f"{queue}.fifo")["QueueUrl"],
        AttributeNames=["All"],
        WaitTimeSeconds=1,
    )
    [message] = response["Messages"]
    assert message["Attributes"]["MessageGroupId"] == "customer-42"


def test_fifo_delayed_message_stays_hidden_until_due(
    make_transport: Callable[..., SqsTransport], queue: str
) -> None:
    transport = make_transport(fifo=True, message_group="task")
    start = time.monotonic()
    transport.publish(queue, envelope_bytes("t1"), message_id="t1", delay_s=2)

    assert transport.reserve([queue], max_messages=1, wait_s=0, lease_s=LONG_LEASE_S) == []
    got = transport.reserve([queue], max_messages=1, wait_s=6, lease_s=LONG_LEASE_S)

    assert len(got) == 1
    assert got[0].delivery_count == 1
    assert 2 - 0.05 <= time.monotonic() - start <= 4


def test_fifo_dead_letters_round_trip(
    make_transport: Callable[..., SqsTransport], queue: str
) -> None:
    transport = make_transport(fifo=True)
    payload = envelope_bytes("t1")
    transport.publish(queue, payload, message_id="t1")
    transport.dead_letter(reserve_one(transport, queue), reason="bad")

    [dead] = transport.dead_letters(queue)
    assert (dead.payload, dead.reason) == (payload, "bad")
    assert transport.requeue_dead_letters(queue, [dead.dead_letter_id]) == 1
    assert reserve_one(transport, queue).payload == payload


def test_invalid_group_header_is_refused(
    make_transport: Callable[..., SqsTransport], queue: str
) -> None:
    transport = make_transport(fifo=True)

    with pytest.raises(TransportError, match=GROUP_HEADER):
        transport.publish(queue, envelope_bytes("t1", **{GROUP_HEADER: ""}))


def test_group_header_is_read_without_parsing_the_body() -> None:
    payload = envelope_bytes("t1", **{GROUP_HEADER: "g"}) + b"\xff not json"

    assert group_header(payload) == "g"
    assert group_header(b"not an envelope") is None
    assert group_header(b"PET1\x00\x00\x00\x02{x") is None
