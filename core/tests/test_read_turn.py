"""The read turn the worker processes of one supervisor share (read_turn.py): one
process holds it at a time, giving it up wakes a waiting one, a process that dies
gives it up with its life, and a waiting worker that stops stops waiting."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from petiole.worker import read_turn
from petiole.worker.read_turn import ReadTurn

JOIN_S = 10.0
FORK = multiprocessing.get_context("fork")


def _holder(turn: ReadTurn, orders: Connection) -> None:
    """A process that takes the turn, says so, and gives it up when told."""
    assert turn.take(threading.Event())
    orders.send("held")
    if orders.recv() == "give":
        turn.give()
        orders.send("given")
    orders.recv()  # then waits to be told to end (or killed)


@pytest.fixture
def turn() -> Iterator[ReadTurn]:
    made = ReadTurn()
    yield made
    made.close()


@pytest.fixture
def holder(turn: ReadTurn) -> Iterator[tuple[multiprocessing.process.BaseProcess, Connection]]:
    """Another process holding ``turn``, and the end of the pipe that commands it."""
    ours, theirs = FORK.Pipe()
    process = FORK.Process(target=_holder, args=(turn, theirs), daemon=True)
    process.start()
    assert ours.poll(JOIN_S)
    assert ours.recv() == "held"
    yield process, ours
    if process.is_alive():
        process.kill()
    process.join(JOIN_S)


def holds(turn: ReadTurn) -> bool:
    """``turn.held``, read anew each time (a property the checker would narrow)."""
    return turn.held


def _take_in_thread(
    turn: ReadTurn, stopping: threading.Event
) -> tuple[threading.Thread, list[bool]]:
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(turn.take(stopping)), daemon=True)
    thread.start()
    return thread, got


def test_a_second_process_waits_until_the_holder_gives_the_turn_up_and_is_woken_then(
    turn: ReadTurn,
    holder: tuple[multiprocessing.process.BaseProcess, Connection],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without the doorbell this process would look again only after an hour.
    monkeypatch.setattr(read_turn, "RECHECK_S", 3600.0)
    _, orders = holder
    assert not turn._try_lock()  # held elsewhere
    thread, got = _take_in_thread(turn, threading.Event())
    orders.send("give")
    assert orders.poll(JOIN_S)
    assert orders.recv() == "given"
    thread.join(JOIN_S)
    assert got == [True]
    assert turn.held
    turn.give()
    assert not turn.held


def test_a_holder_killed_by_sigkill_gives_the_turn_up_with_its_life(
    turn: ReadTurn, holder: tuple[multiprocessing.process.BaseProcess, Connection]
) -> None:
    process, _ = holder
    assert not turn._try_lock()
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    process.join(JOIN_S)
    thread, got = _take_in_thread(turn, threading.Event())  # no doorbell rang: the lock is free
    thread.join(JOIN_S)
    assert got == [True]
    turn.give()


def test_a_process_waiting_for_the_turn_stops_waiting_when_its_worker_stops(
    turn: ReadTurn, holder: tuple[multiprocessing.process.BaseProcess, Connection]
) -> None:
    stopping = threading.Event()
    thread, got = _take_in_thread(turn, stopping)
    stopping.set()
    thread.join(JOIN_S)
    assert got == [False]
    assert not turn.held


def test_a_task_running_long_with_the_turn_held_gives_it_up(
    turn: ReadTurn, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert turn.take(threading.Event())
    now = [100.0]
    monkeypatch.setattr("petiole.worker.read_turn.time.monotonic", lambda: now[0])
    turn.task_started()
    now[0] += read_turn.LONG_TASK_S / 2
    turn.give_if_task_long()
    assert holds(turn)  # short so far
    now[0] += read_turn.LONG_TASK_S
    turn.give_if_task_long()
    assert not holds(turn)
    assert turn.take(threading.Event())
    turn.task_ended()
    now[0] += 60
    turn.give_if_task_long()
    assert holds(turn)  # no task running: an idle holder keeps it
    turn.give()


def test_a_forked_child_does_not_inherit_the_turn_its_parent_held(turn: ReadTurn) -> None:
    assert turn.take(threading.Event())
    ours, theirs = FORK.Pipe()

    def report() -> None:
        theirs.send((turn.held, turn._try_lock()))

    child = FORK.Process(target=report, daemon=True)
    child.start()
    assert ours.poll(JOIN_S)
    assert ours.recv() == (False, False)  # not its turn, and the parent still holds it
    child.join(JOIN_S)
    turn.give()
