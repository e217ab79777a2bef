"""HardLimits: the watch behind hard time limits of tasks run in the worker's own
process (solo, under a supervisor). What the worker does at expiry runs for real
in tests/test_worker_processes.py."""

from __future__ import annotations

import threading

from petiole.envelope import Envelope
from petiole.pools.base import ACK, Job, Outcome
from petiole.worker.hard_limits import HardLimits

DONE = Outcome(ACK, "SUCCESS")


def job(name: str, time_limit_s: float) -> Job:
    envelope = Envelope({"id": name, "task": "t"}, b"", "application/json")
    return Job(envelope, "q", 1, name, time_limit_s=time_limit_s)


def test_a_job_that_finishes_in_time_is_reported_and_no_longer_watched() -> None:
    expired: list[Job] = []
    finished: list[tuple[Job, Outcome]] = []
    limits = HardLimits(expired.append)
    quick = job("quick", 60)
    on_done = limits.guard(quick, lambda j, o: finished.append((j, o)))
    assert limits.armed == 1
    on_done(quick, DONE)
    assert finished == [(quick, DONE)]
    assert limits.armed == 0
    assert expired == []


def test_a_job_past_its_limit_goes_to_on_expiry_and_its_late_outcome_is_dropped() -> None:
    expired = threading.Event()
    seen: list[Job] = []
    finished: list[Job] = []

    def on_expiry(j: Job) -> None:
        seen.append(j)
        expired.set()

    limits = HardLimits(on_expiry)
    slow = job("slow", 0.05)
    on_done = limits.guard(slow, lambda j, o: finished.append(j))
    assert expired.wait(10)
    on_done(slow, DONE)  # the task ended after all: the expiry owns it
    assert seen == [slow]
    assert finished == []
    assert limits.armed == 0


def test_a_sooner_deadline_armed_after_a_later_one_still_expires_first() -> None:
    order: list[str] = []
    first = threading.Event()

    def on_expiry(j: Job) -> None:
        order.append(j.receipt)
        first.set()

    limits = HardLimits(on_expiry)
    limits.guard(job("late", 3600), lambda j, o: None)  # the watch now sleeps an hour
    limits.guard(job("soon", 0.05), lambda j, o: None)
    assert first.wait(10)
    assert order == ["soon"]
    assert limits.armed == 1


def test_after_a_finished_job_the_next_ones_deadline_is_still_watched() -> None:
    # The watch keeps its wake-up for the finished job and must then see the new one.
    expired = threading.Event()
    limits = HardLimits(lambda j: expired.set())
    for n in range(3):
        quick = job(f"quick{n}", 0.05)
        limits.guard(quick, lambda j, o: None)(quick, DONE)
    limits.guard(job("slow", 0.1), lambda j, o: None)
    assert expired.wait(10)
    assert limits.armed == 0
