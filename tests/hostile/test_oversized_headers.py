"""A header block nested 100,000 levels deep (about 200 KB) in an otherwise
well-framed message is dead-lettered with a reason, and the good messages
reserved in the same batch run at once rather than after their lease."""

from __future__ import annotations

import re
import time
import uuid

from hostile_app import register
from hostile_kit import (
    Stores,
    dead_letters,
    deeply_nested_header_block,
    framed,
    missing_threads,
    petiole_threads,
)

from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker

QUEUE = "default"
LEASE_S = 30.0
PROMPT_S = 10.0
# What the reason must be about: the nesting, or the size it makes.
ABOUT_NESTING = re.compile(r"nest|depth|deep|size|large|long|bytes", re.IGNORECASE)


def test_deeply_nested_header_is_dead_lettered_and_its_batch_runs_promptly(
    stores: Stores,
) -> None:
    app = register(stores.app(lease_s=LEASE_S))
    echo = app.tasks["hostile.echo"]
    before_ids = [echo.delay(i).id for i in range(5)]
    nested_id = str(uuid.uuid4())
    block = deeply_nested_header_block("hostile.echo", nested_id)
    assert len(block) > 200_000
    app.transport.publish(QUEUE, framed(block), message_id=nested_id)
    after_ids = [echo.delay(i).id for i in range(5, 10)]

    # Concurrency 4 x prefetch 4: the first reserve takes all eleven messages.
    with start_worker(app, pool="threads", concurrency=4, prefetch_multiplier=4) as worker:
        before = petiole_threads()
        started = time.monotonic()
        done = app.backend.wait([*before_ids, *after_ids], timeout_s=PROMPT_S)
        took_s = time.monotonic() - started
        wait_until(lambda: len(dead_letters(app, QUEUE)) == 1, timeout_s=5)
        died = missing_threads(before)
        counts = dict(worker.counts)

    assert len(done) == 10, f"only {len(done)} of 10 good tasks ran within {PROMPT_S} s"
    assert all(record.state == "SUCCESS" for record in done.values())
    assert took_s < PROMPT_S
    assert not died, f"worker threads died: {died}"
    letters = dead_letters(app, QUEUE)
    assert len(letters) == 1, letters
    (letter,) = letters
    assert letter.delivery_count == 1
    assert ABOUT_NESTING.search(letter.reason), letter.reason
    assert counts.get("dead_lettered") == 1, counts
    assert app.transport.size(QUEUE) == 0
