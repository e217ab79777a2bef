"""Task ids: random version-4 UUIDs, unique within and across processes."""

from __future__ import annotations

import os
import threading
import uuid

from petiole.ids import new_id


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
