from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal

import pytest

from petiole import Petiole, RemoteTaskError, ResultTimeout, states
from petiole.envelope import Envelope
from petiole.errors import ConfigError, SerializationError


def _published(app: Petiole, queue: str = "default") -> Envelope:
    [delivery] = app.transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30)
    return Envelope.from_bytes(delivery.payload)


def test_delay_publishes_a_v1_envelope_with_metadata_headers(app: Petiole) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    envelope = _published(app)
    assert (
        envelope.task_name
        == add.name
        == f"{__name__}.test_delay_publishes_a_v1_envelope_with_metadata_headers.<locals>.add"
    )
    assert envelope.task_id == result.id
    assert envelope.headers["protocol"] == 1
    assert envelope.headers["root_id"] == result.id
    assert envelope.content_type == "application/json"
    assert app.serializer("json").loads(envelope.body) == [[2, 3], {}]


def test_apply_async_options_land_in_headers(app: Petiole) -> None:
    @app.task(name="t.opts", queue="q1")
    def opts() -> None: ...

    before = time.time()
    opts.apply_async(
        countdown=0.0, expires=60, priority=7, task_id="fixed-id", headers={"x_tenant": "acme"}
    )
    envelope = _published(app, "q1")
    assert envelope.task_id == "fixed-id"
    assert envelope.headers["priority"] == 7
    assert before + 59 < envelope.headers["expires"] < time.time() + 61
    assert envelope.headers["x_tenant"] == "acme"


def test_eta_must_be_timezone_aware(app: Petiole) -> None:
    @app.task
    def noop() -> None: ...

    with pytest.raises(ConfigError, match="naive datetime"):
        noop.apply_async(eta=dt.datetime(2030, 1, 1))


def test_countdown_keeps_the_message_invisible_until_due(app: Petiole) -> None:
    @app.task
    def later() -> None: ...

    later.apply_async(countdown=30)
    assert app.transport.reserve(["default"], max_messages=1, wait_s=0, lease_s=30) == []
    assert app.transport.size("default") == 1


def test_priority_out_of_range_is_refused(app: Petiole) -> None:
    @app.task
    def noop() -> None: ...

    with pytest.raises(ConfigError, match="0-9"):
        noop.apply_async(priority=12)


def test_send_task_by_name_needs_no_registration(app: Petiole) -> None:
    app.send_task("elsewhere.task", [1], {"k": "v"}, queue="other")
    envelope = _published(app, "other")
    assert envelope.task_name == "elsewhere.task"


def test_unserializable_argument_fails_at_the_call_naming_the_type(app: Petiole) -> None:
    @app.task
    def takes(x: object) -> None: ...

    with pytest.raises(SerializationError, match="object"):
        takes.delay(object())


def test_unknown_task_option_is_an_error(app: Petiole) -> None:
    with pytest.raises(ConfigError, match="quue"):
        app.task(quue="x")


def test_unknown_setting_keyword_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'lease_s'"):
        Petiole("t", lease=3)


def test_pending_for_unknown_ids(app: Petiole) -> None:
    result = app.AsyncResult(str(uuid.uuid4()))
    assert result.state == states.PENDING
    assert not result.ready()
    assert result.result is None


def test_get_times_out_with_a_timeout_error(app: Petiole) -> None:
    with pytest.raises(ResultTimeout) as info:
        app.AsyncResult("never").get(timeout=0.05)
    assert isinstance(info.value, TimeoutError)


# -- eager mode -------------------------------------------------------------


@pytest.fixture
def eager(app: Petiole) -> Petiole:
    app.configure(eager=True)
    return app


def test_eager_runs_in_the_caller_and_returns_the_value(eager: Petiole) -> None:
    @eager.task
    def mul(x: Decimal, y: int) -> Decimal:
        return x * y

    result = mul.delay(Decimal("1.5"), 3)
    assert result.successful()
    assert result.get() == Decimal("4.5")


def test_eager_round_trips_arguments_through_the_serializer(eager: Petiole) -> None:
    @eager.task
    def kind(x: object) -> str:
        return type(x).__name__

    assert kind.delay((1, 2)).get() == "list"


def test_eager_failure_is_kept_in_the_result_by_default(eager: Petiole) -> None:
    @eager.task
    def boom() -> None:
        raise KeyError("k")

    result = boom.delay()
    assert result.failed()
    assert isinstance(result.result, KeyError)
    assert "raise KeyError" in (result.traceback or "")


def test_eager_failure_propagates_when_asked(eager: Petiole) -> None:
    eager.configure(eager_propagates=True)

    @eager.task
    def boom() -> None:
        raise ValueError("bad value")

    with pytest.raises(ValueError, match="bad value"):
        boom.delay()


def test_bound_task_sees_its_request(eager: Petiole) -> None:
    @eager.task(bind=True)
    def whoami(self: object) -> str:
        return self.request.id  # type: ignore[attr-defined, no-any-return]

    result = whoami.delay()
    assert result.get() == result.id


class CustomError(Exception):
    pass


def test_rebuilt_exception_carries_the_remote_traceback_as_a_note(eager: Petiole) -> None:
    eager.configure(eager_propagates=False)

    @eager.task
    def boom() -> None:
        raise CustomError("custom")

    with pytest.raises(CustomError) as info:
        boom.delay().get()
    notes = getattr(info.value, "__notes__", [])
    assert any("Remote traceback" in n and "CustomError" in n for n in notes)


def test_exception_of_a_class_not_importable_here_becomes_remote_task_error(app: Petiole) -> None:
    from petiole.backend import ResultRecord

    payload = app.serializer("json").dumps(
        {"type": "secret_module.Unheard", "message": "nope", "args": ["nope"]}
    )
    app.store_result(
        ResultRecord("r1", states.FAILURE, payload, "application/json", "Traceback...", time.time())
    )
    with pytest.raises(RemoteTaskError) as info:
        app.AsyncResult("r1").get()
    assert info.value.type_name == "secret_module.Unheard"
    assert info.value.message == "nope"
    assert info.value.remote_traceback == "Traceback..."
