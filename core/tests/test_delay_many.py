"""``Task.delay_many`` and ``app.sending_in_batches()``: many sends, in bounded batches,
each durable before the next is read, and a failure that says what was sent."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from petiole import Petiole
from petiole.envelope import Envelope
from petiole.errors import ConfigError, TransportError
from petiole.producer import SendManyError
from petiole.transport import Delivery, PublishesInBatches, Transport


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Petiole]:
    """An app on the in-memory transport or the SQLite default, with task ``add``."""
    if request.param == "memory":
        broker = f"memory://{uuid.uuid4().hex}"
    else:
        broker = f"sqlite:///{tmp_path / 'broker.db'}"
    app = Petiole(
        "many",
        broker=broker,
        backend=f"memory://{uuid.uuid4().hex}",
        config_file="/dev/null",
        task_routes={"routed.*": {"queue": "routed-queue"}},
    )

    @app.task(name="add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    @app.task(name="routed.fetch")
    def fetch(url: str) -> str:
        return url

    yield app
    app.close()


def drain(transport: Transport, queue: str = "default") -> list[Delivery]:
    got: list[Delivery] = []
    while batch := transport.reserve([queue], max_messages=100, wait_s=0, lease_s=60):
        got.extend(batch)
    return got


def sent_calls(app: Petiole, queue: str = "default") -> list[tuple[str, Any, Any]]:
    """(task id, args, kwargs) of each message in ``queue``, in order (drains it)."""
    out = []
    for delivery in drain(app.transport, queue):
        envelope = Envelope.from_bytes(delivery.payload)
        serializer = app.serializer_for_content_type(envelope.content_type)
        args, kwargs = serializer.loads(app.decode_body(envelope))
        out.append((envelope.task_id, args, kwargs))
    return out


class PublishLog:
    """Wraps the app's transport: logs ``open``/``publish``/``close`` of batch
    blocks and publishes, and fails the publish numbered ``fail_at`` (from 0)."""

    def __init__(self, app: Petiole, *, batches: bool, fail_at: int | None = None) -> None:
        self.log: list[str] = []
        self.published = 0
        transport: Any = app.transport
        inner_publish = transport.publish

        def publish(queue: str, payload: bytes, **options: Any) -> None:
            if self.published == fail_at:
                raise TransportError("the broker went away (injected)")
            inner_publish(queue, payload, **options)
            self.published += 1
            self.log.append("publish")

        transport.publish = publish
        if batches:
            inner_batch = getattr(transport, "batch", None)

            @contextlib.contextmanager
            def batch() -> Iterator[None]:
                self.log.append("open")
                with inner_batch() if inner_batch is not None else contextlib.nullcontext():
                    yield
                self.log.append("close")

            transport.batch = batch
            assert isinstance(transport, PublishesInBatches)


def test_results_come_back_in_order_with_the_ids_of_the_messages(app: Petiole) -> None:
    add = app.tasks["add"]
    items = [(i, i) for i in range(7)]

    results = add.delay_many(items, batch_size=3)

    sent = sent_calls(app)
    assert [r.id for r in results] == [task_id for task_id, _, _ in sent]
    assert len({r.id for r in results}) == 7
    assert [args for _, args, _ in sent] == [list(item) for item in items]


def test_a_mapping_is_one_calls_keyword_arguments(app: Petiole) -> None:
    add = app.tasks["add"]

    add.delay_many([{"a": 1, "b": 2}, (3,), [4, 5]])

    assert [(a, k) for _, a, k in sent_calls(app)] == [
        ([], {"a": 1, "b": 2}),
        ([3], {}),
        ([4, 5], {}),
    ]


def test_options_apply_to_every_call(app: Petiole) -> None:
    add = app.tasks["add"]

    results = add.delay_many([(1, 1), (2, 2)], queue="elsewhere", priority=7, countdown=3600)

    assert app.transport.size("elsewhere") == 2
    assert drain(app.transport, "elsewhere") == []  # not due for an hour
    assert [r.queue for r in results] == ["elsewhere", "elsewhere"]


def test_calls_are_routed_as_apply_async_routes_them(app: Petiole) -> None:
    fetch = app.tasks["routed.fetch"]

    results = fetch.delay_many([("a",), ("b",)])

    assert app.transport.size("routed-queue") == 2
    assert [r.queue for r in results] == ["routed-queue", "routed-queue"]


def test_a_list_is_checked_whole_before_anything_is_sent(app: Petiole) -> None:
    add = app.tasks["add"]
    items = [(i, i) for i in range(10)] + [(1, 2, 3)]

    with pytest.raises(TypeError, match=r"add.delay_many\(\), item 10: add\(a, b=0\)"):
        add.delay_many(items, batch_size=2)

    assert app.transport.size("default") == 0


def test_an_item_that_is_not_a_call_is_refused_naming_it(app: Petiole) -> None:
    with pytest.raises(TypeError, match=r"item 1: 5 is neither a tuple .* \(x,\)"):
        app.tasks["add"].delay_many([(1,), 5])  # type: ignore[list-item]
    assert app.transport.size("default") == 0


def test_a_bad_item_in_a_later_batch_of_a_generator_reports_the_batches_sent(
    app: Petiole,
) -> None:
    add = app.tasks["add"]
    items = ((i,) if i != 7 else ("too", "many", "args") for i in range(20))

    with pytest.raises(SendManyError) as caught:
        add.delay_many(items, batch_size=3)

    error = caught.value
    assert isinstance(error.__cause__, TypeError)
    assert len(error.sent) == 6
    assert error.unconfirmed == []
    assert "Sent: items 0-5" in str(error)
    assert "Not sent: every item from 6 on" in str(error)
    assert {d for d, _, _ in sent_calls(app)} == {r.id for r in error.sent}


def test_a_generator_is_read_one_batch_at_a_time(app: Petiole) -> None:
    spy = PublishLog(app, batches=False)
    read_ahead: list[int] = []

    def items() -> Iterator[tuple[int]]:
        for i in range(25):
            read_ahead.append(i - spy.published)  # items read but not yet published
            yield (i,)

    app.tasks["add"].delay_many(items(), batch_size=4)

    assert spy.published == 25
    assert max(read_ahead) < 4


def test_each_batch_is_one_publishing_block_closed_before_the_next_is_read(
    app: Petiole,
) -> None:
    spy = PublishLog(app, batches=True)

    def items() -> Iterator[tuple[int]]:
        for i in range(5):
            spy.log.append("read")
            yield (i,)

    app.tasks["add"].delay_many(items(), batch_size=2)

    assert spy.log == [
        *["read", "read", "open", "publish", "publish", "close"] * 2,
        "read",
        "open",
        "publish",
        "close",
    ]
    assert app.transport.size("default") == 5


def test_a_failure_without_batches_reports_every_publish_that_returned_as_sent(
    app: Petiole,
) -> None:
    if isinstance(app.transport, PublishesInBatches):
        pytest.skip("the transport batches publishes: the next test covers it")
    PublishLog(app, batches=False, fail_at=4)

    with pytest.raises(SendManyError) as caught:
        app.tasks["add"].delay_many([(i,) for i in range(10)], batch_size=3)

    error = caught.value
    assert isinstance(error.__cause__, TransportError)
    assert len(error.sent) == 4
    assert len(error.unconfirmed) == 1
    stored = [task_id for task_id, _, _ in sent_calls(app)]
    assert stored == [r.id for r in error.sent]
    assert error.unconfirmed[0].id not in stored
    assert "Sent: items 0-3" in str(error)
    assert "items 4-4" in str(error)
    assert "the broker went away" in str(error)


def test_a_failure_in_a_batch_reports_the_batch_as_unconfirmed(app: Petiole) -> None:
    PublishLog(app, batches=True, fail_at=4)

    with pytest.raises(SendManyError) as caught:
        app.tasks["add"].delay_many([(i,) for i in range(10)], batch_size=3)

    error = caught.value
    assert len(error.sent) == 3  # the first batch's block ended: durable
    assert len(error.unconfirmed) == 2  # item 3 queued, item 4 failed
    stored = {task_id for task_id, _, _ in sent_calls(app)}
    assert {r.id for r in error.sent} <= stored
    assert stored <= {r.id for r in error.sent + error.unconfirmed}


def test_a_failure_before_anything_was_sent_raises_the_error_itself(app: Petiole) -> None:
    PublishLog(app, batches=False, fail_at=0)

    with pytest.raises(TransportError, match="injected"):
        app.tasks["add"].delay_many([(1,), (2,)])


def test_inside_a_sending_block_nothing_is_claimed_sent_before_the_block_ends(
    app: Petiole,
) -> None:
    PublishLog(app, batches=True, fail_at=4)

    with pytest.raises(SendManyError) as caught, app.sending_in_batches():
        app.tasks["add"].delay_many([(i,) for i in range(10)], batch_size=3)

    assert caught.value.sent == []
    assert len(caught.value.unconfirmed) == 5


def test_task_id_and_a_batch_size_below_one_are_refused(app: Petiole) -> None:
    add = app.tasks["add"]
    with pytest.raises(ConfigError, match="its own id: drop task_id="):
        add.delay_many([(1,)], task_id="x")
    with pytest.raises(ConfigError, match="batch_size must be at least 1, got 0"):
        add.delay_many([(1,)], batch_size=0)
    assert app.transport.size("default") == 0


def test_an_empty_iterable_sends_nothing(app: Petiole) -> None:
    assert app.tasks["add"].delay_many(iter([])) == []
    assert app.transport.size("default") == 0


def test_in_eager_mode_every_call_runs_here() -> None:
    store = f"memory://{uuid.uuid4().hex}"
    app = Petiole("eager", broker=store, backend=store, eager=True, config_file="/dev/null")

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    results = add.delay_many([(1, 2), (3, 4)], batch_size=1)

    assert [r.get(timeout=1) for r in results] == [3, 7]


def test_sends_in_a_sending_block_go_out_in_one_batch(app: Petiole) -> None:
    spy = PublishLog(app, batches=True)
    add = app.tasks["add"]

    with app.sending_in_batches():
        for i in range(3):
            add.delay(i)
        with app.sending_in_batches():  # joins the outer block
            add.delay(3)

    assert spy.log == ["open", "publish", "publish", "publish", "open", "publish", "close", "close"]
    assert app.transport.size("default") == 4


def test_a_sending_block_on_a_transport_without_batches_sends_each_at_once(
    app: Petiole,
) -> None:
    if isinstance(app.transport, PublishesInBatches):
        pytest.skip("the transport batches publishes")

    with app.sending_in_batches():
        app.tasks["add"].delay(1)
        assert app.transport.size("default") == 1
