"""Outage tracking: one warning per outage, one line on recovery, a flap is one outage,
and the retry loop that plugins ride outages out with."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from petiole.outages import (
    FLAP_WINDOW_S,
    Closable,
    Closed,
    DownTooLong,
    OutageTracker,
    StillDown,
    backoff_s,
    call_through_outage,
)
from petiole.testing._helpers import run_concurrently

LOGGER = "petiole.tests.outages"
TARGET = "redis broker redis://127.0.0.1:6379/0"


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def tracker(clock: FakeClock, target: str = TARGET) -> OutageTracker:
    return OutageTracker(
        logging.getLogger(LOGGER),
        target,
        lost="connection lost",
        meanwhile="retrying with backoff for up to 30 s",
        clock=clock,
    )


@pytest.fixture
def outages(clock: FakeClock) -> OutageTracker:
    """A tracker of TARGET on the fake clock."""
    return tracker(clock)


def lines(log: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in log.records if r.levelno == level]


class ConnectionRefused(Exception):
    pass


def refused(exc: Exception) -> bool:
    return isinstance(exc, ConnectionRefused)


# -- the tracker ---------------------------------------------------------------------


def test_first_failure_logs_one_warning_naming_the_target_the_error_and_what_happens_next(
    outages: OutageTracker, log: pytest.LogCaptureFixture
) -> None:
    assert outages.failed("ConnectionError: refused") == 0.0

    assert lines(log, logging.WARNING) == [
        f"{TARGET}: connection lost (ConnectionError: refused); "
        "retrying with backoff for up to 30 s"
    ]
    assert log.records[0].name == LOGGER


def test_later_failures_of_the_same_outage_are_quiet_and_return_its_length(
    outages: OutageTracker, clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    outages.failed("refused")
    clock.now += 2.5

    assert outages.failed("refused again") == 2.5
    assert outages.down_for_s() == 2.5
    assert len(log.records) == 1


def test_recovery_logs_one_info_line_with_how_long_the_outage_lasted(
    outages: OutageTracker, clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    outages.failed("refused")
    clock.now += 4.25
    outages.succeeded()
    outages.succeeded()

    assert lines(log, logging.INFO) == [f"{TARGET}: reconnected after 4.2 s"]
    assert outages.down_for_s() is None


def test_successes_while_up_log_nothing(
    outages: OutageTracker, log: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        outages.succeeded()

    assert log.records == []
    assert outages.down_for_s() is None


def test_a_failure_soon_after_a_recovery_continues_the_same_outage(
    outages: OutageTracker, clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    # A node shutting down: one thread fails, another's request still succeeds,
    # then the first fails again.
    outages.failed("Server is shutting down")
    clock.now += 1.0
    outages.succeeded()
    clock.now += FLAP_WINDOW_S - 0.5

    down_for_s = outages.failed("connection refused")

    assert down_for_s == 1.0 + FLAP_WINDOW_S - 0.5  # counted from the first failure
    assert len(lines(log, logging.WARNING)) == 1
    [flap] = lines(log, logging.DEBUG)
    assert "connection lost" not in flap  # a search for the warning finds one line
    assert "the same outage" in flap
    clock.now += 2.0
    outages.succeeded()
    whole_s = 1.0 + (FLAP_WINDOW_S - 0.5) + 2.0
    assert lines(log, logging.INFO)[-1] == f"{TARGET}: reconnected after {whole_s:.1f} s"


def test_a_failure_after_the_flap_window_is_a_new_outage(
    outages: OutageTracker, clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    outages.failed("refused")
    outages.succeeded()
    clock.now += FLAP_WINDOW_S

    assert outages.failed("refused") == 0.0
    assert len(lines(log, logging.WARNING)) == 2


def test_a_zero_flap_window_makes_every_failure_after_a_recovery_a_new_outage(
    clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    outages = OutageTracker(logging.getLogger(LOGGER), TARGET, flap_window_s=0.0, clock=clock)
    outages.failed("refused")
    outages.succeeded()
    outages.failed("refused")

    assert len(lines(log, logging.WARNING)) == 2


def test_secrets_in_the_target_and_the_error_are_masked(
    clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    outages = tracker(clock, "redis broker redis://:hunter2@127.0.0.1:6379/0")

    outages.failed("AuthError: password=hunter2 refused")
    outages.succeeded()

    text = "\n".join(r.getMessage() for r in log.records)
    assert "hunter2" not in text
    assert "redis://:***@127.0.0.1:6379/0" in text


def test_the_words_of_each_line_are_the_plugins(
    clock: FakeClock, log: pytest.LogCaptureFixture
) -> None:
    outages = OutageTracker(
        logging.getLogger(LOGGER),
        "mongo broker mongodb://h/db",
        lost="change stream lost",
        meanwhile="polling until it reopens",
        back="change stream reopened",
        clock=clock,
    )
    outages.failed("AutoReconnect: down")
    clock.now += 3.0
    outages.succeeded()

    assert [r.getMessage() for r in log.records] == [
        "mongo broker mongodb://h/db: change stream lost (AutoReconnect: down); "
        "polling until it reopens",
        "mongo broker mongodb://h/db: change stream reopened after 3.0 s",
    ]


def test_many_threads_failing_at_once_log_one_warning_and_recovering_at_once_one_info(
    log: pytest.LogCaptureFixture,
) -> None:
    outages = OutageTracker(logging.getLogger(LOGGER), TARGET)

    run_concurrently([lambda: outages.failed("refused")] * 16)
    run_concurrently([outages.succeeded] * 16)

    assert len(lines(log, logging.WARNING)) == 1
    assert len(lines(log, logging.INFO)) == 1


# -- the retry loop ------------------------------------------------------------------


class Flaky:
    """Fails with ConnectionRefused ``failures`` times, then returns ``"ok"``."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionRefused(f"attempt {self.calls}")
        return "ok"


def call(
    attempt: Flaky | object,
    outages: OutageTracker,
    *,
    closed: threading.Event | None = None,
    limit_s: float = 30.0,
    until: float | None = None,
) -> object:
    return call_through_outage(
        attempt,  # type: ignore[arg-type]
        outages=outages,
        is_outage=refused,
        reason=lambda exc: f"{type(exc).__name__}: {exc}",
        closed=closed or threading.Event(),
        limit_s=limit_s,
        until=until,
    )


def test_a_call_retries_through_an_outage_and_logs_it_once(
    log: pytest.LogCaptureFixture,
) -> None:
    outages = OutageTracker(logging.getLogger(LOGGER), TARGET)
    attempt = Flaky(failures=3)

    assert call(attempt, outages) == "ok"

    assert attempt.calls == 4
    assert lines(log, logging.WARNING) == [
        f"{TARGET}: connection lost (ConnectionRefused: attempt 1); retrying"
    ]
    assert len(lines(log, logging.INFO)) == 1
    assert outages.down_for_s() is None


def test_an_error_that_is_no_outage_is_raised_as_it_is_and_logs_nothing(
    log: pytest.LogCaptureFixture,
) -> None:
    outages = OutageTracker(logging.getLogger(LOGGER), TARGET)

    def wrong_password() -> None:
        raise PermissionError("WRONGPASS")

    with pytest.raises(PermissionError, match="WRONGPASS"):
        call(wrong_password, outages)
    assert log.records == []
    assert outages.down_for_s() is None


def test_an_outage_that_lasts_the_limit_raises_down_too_long_from_the_last_error() -> None:
    outages = OutageTracker(logging.getLogger(LOGGER), TARGET)

    with pytest.raises(DownTooLong) as info:
        call(Flaky(failures=10), outages, limit_s=0.0)

    assert info.value.reason == "ConnectionRefused: attempt 1"
    assert info.value.down_for_s >= 0.0
    assert isinstance(info.value.__cause__, ConnectionRefused)


def test_the_limit_counts_from_the_start_of_the_outage_not_of_the_call(
    outages: OutageTracker, clock: FakeClock
) -> None:
    outages.failed("another thread's call failed first")
    clock.now += 31.0

    with pytest.raises(DownTooLong) as info:
        call(Flaky(failures=1), outages, limit_s=30.0)
    assert info.value.down_for_s == 31.0


def test_an_outage_past_the_callers_deadline_raises_still_down_after_a_last_attempt() -> None:
    outages = OutageTracker(logging.getLogger(LOGGER), TARGET)
    attempt = Flaky(failures=10)

    with pytest.raises(StillDown) as info:
        call(attempt, outages, until=time.monotonic())

    assert attempt.calls == 1
    assert isinstance(info.value.__cause__, ConnectionRefused)
    assert outages.down_for_s() is not None  # the outage goes on for the other callers


def test_a_closed_component_raises_closed_before_any_attempt() -> None:
    closed = threading.Event()
    closed.set()
    attempt = Flaky(failures=0)

    with pytest.raises(Closed):
        call(attempt, OutageTracker(logging.getLogger(LOGGER), TARGET), closed=closed)
    assert attempt.calls == 0


def test_any_error_after_the_component_closed_under_the_call_is_closed(
    log: pytest.LogCaptureFixture,
) -> None:
    closed = threading.Event()

    def read_on_a_closed_socket() -> None:
        closed.set()
        raise ValueError("I/O operation on closed file")

    with pytest.raises(Closed) as info:
        call(
            read_on_a_closed_socket, OutageTracker(logging.getLogger(LOGGER), TARGET), closed=closed
        )
    assert isinstance(info.value.__cause__, ValueError)
    assert log.records == []


def test_closing_ends_the_wait_between_attempts() -> None:
    closed = threading.Event()
    failed = threading.Event()

    def down() -> None:
        failed.set()
        raise ConnectionRefused("down")

    outcome: list[BaseException] = []

    def run() -> None:
        try:
            call(down, OutageTracker(logging.getLogger(LOGGER), TARGET), closed=closed)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert failed.wait(10)
    closed.set()
    thread.join(10)

    assert not thread.is_alive()
    assert [type(exc) for exc in outcome] == [Closed]


# -- backoff and closing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "full_s"), [(0, 0.05), (1, 0.1), (2, 0.2), (5, 1.6), (6, 2.0), (60, 2.0)]
)
def test_backoff_doubles_from_first_s_up_to_cap_s_jittered_down_by_up_to_half(
    attempt: int, full_s: float
) -> None:
    for _ in range(50):
        assert full_s / 2 <= backoff_s(attempt) <= full_s


def test_backoff_takes_the_plugins_own_first_and_cap() -> None:
    assert 0.05 <= backoff_s(0, first_s=0.1, cap_s=5.0) <= 0.1
    assert 2.5 <= backoff_s(10, first_s=0.1, cap_s=5.0) <= 5.0


def test_closable_lets_exactly_one_of_many_closing_threads_release_the_connections() -> None:
    closable = Closable()

    firsts = run_concurrently([closable._mark_closed] * 16)

    assert firsts.count(True) == 1
    assert closable.closed


def test_closable_wait_returns_at_once_once_closed() -> None:
    closable = Closable()
    assert closable.wait_closed(0) is False
    closable._mark_closed()

    started = time.monotonic()
    assert closable.wait_closed(60) is True
    assert time.monotonic() - started < 5
