"""Task ids (random version-4 UUIDs), random digits and the pid, each right within
and across processes without a system call per call."""

from __future__ import annotations

import os
import threading
import uuid

from petiole.ids import current_pid, new_id, random_bytes, random_hex


def test_an_id_is_a_version_4_uuid_in_its_usual_form() -> None:
    text = new_id()
    parsed = uuid.UUID(text)
    assert str(parsed) == text
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat_across_many_buffer_refills() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)


def test_threads_draw_different_ids() -> None:
    drawn: list[list[str]] = [[] for _ in range(4)]

    def draw(into: list[str]) -> None:
        into.extend(new_id() for _ in range(1_000))

    threads = [threading.Thread(target=draw, args=(into,)) for into in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [one for into in drawn for one in into]
    assert len(set(every)) == len(every) == 4_000


def test_a_forked_child_does_not_hand_out_its_parents_next_ids() -> None:
    new_id()  # the parent's buffer now holds ids it has not handed out
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.close(read_end)
        os.write(write_end, ",".join(new_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_ids = set(pipe.read().decode().split(","))
    os.waitpid(pid, 0)
    parent_ids = {new_id() for _ in range(10)}
    assert len(child_ids) == 10
    assert not child_ids & parent_ids


def test_random_hex_is_as_many_digits_as_asked_and_does_not_repeat() -> None:
    drawn = [random_hex(8) for _ in range(10_000)]
    assert all(len(one) == 16 and int(one, 16) >= 0 for one in drawn)
    assert len(set(drawn)) == len(drawn)


def test_random_bytes_longer_than_the_read_ahead_are_served_whole() -> None:
    first, second = random_bytes(10_000), random_bytes(10_000)
    assert len(first) == len(second) == 10_000
    assert first != second


def test_a_forked_child_knows_its_own_pid_and_draws_its_own_digits() -> None:
    random_hex(8)  # the parent's buffer now holds digits it has not handed out
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its pid as it reads it, and its next digits
        os.close(read_end)
        os.write(write_end, f"{current_pid()}:{os.getpid()}:{random_hex(8)}".encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        said, real, digits = pipe.read().decode().split(":")
    os.waitpid(pid, 0)
    assert said == real == str(pid)
    assert current_pid() == os.getpid() != pid
    assert digits != random_hex(8)
