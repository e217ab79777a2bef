"""A worker fed a few hundred fuzzed messages (random framing, headers, bodies
and content types) settles every one — runs it or dead-letters it with a
reason — and is still whole afterwards: every thread alive, a good task runs.

One worker (threads pool, in this process, on SQLite) serves every example
hypothesis draws; each example publishes a batch and waits until the worker
has settled all of it. Shrinking is off: each example costs a worker round
trip, and the failing batch is reported as drawn.
"""

from __future__ import annotations

import collections

import pytest
from hostile_app import register
from hostile_kit import Stores, count_input, dead_letters, missing_threads, petiole_threads
from hostile_strategies import message_id, worker_messages
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from petiole import Petiole
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker
from petiole.worker import Worker

pytestmark = pytest.mark.slow

QUEUE = "fuzz"  # callbacks the fuzz triggers go to "default", which this worker ignores
BATCHES = 20
BATCH = (10, 12)  # messages per batch: over 200 in all
SETTLE_S = 10.0
# Counts that do not remove a message from the queue for good.
NOT_SETTLED = {"dead_lettered", "requeued", "returned", "redelayed", "lost", "lease_lost"}


def _acked(counts: collections.Counter[str]) -> int:
    return sum(n for kind, n in counts.items() if kind not in NOT_SETTLED)


def test_fuzzed_messages_are_each_run_or_dead_lettered_and_the_worker_survives(
    sqlite_stores: Stores,
) -> None:
    app = register(sqlite_stores.app())
    name = "worker end to end, fuzzed messages (SQLite)"
    sent = 0

    with start_worker(
        app, pool="threads", concurrency=4, queues=[QUEUE], shutdown_timeout_s=5
    ) as worker:
        threads = petiole_threads()

        def settled() -> bool:
            return (
                app.transport.size(QUEUE) == 0
                and _acked(worker.counts) + len(dead_letters(app, QUEUE)) == sent
            )

        @settings(
            max_examples=BATCHES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(worker_messages(), min_size=BATCH[0], max_size=BATCH[1]))
        def batch(messages: list[bytes]) -> None:
            nonlocal sent
            for payload in messages:
                app.transport.publish(QUEUE, payload, message_id=message_id())
                count_input(name)
            sent += len(messages)
            assert wait_until(settled, timeout_s=SETTLE_S), _describe(app, worker, sent)
            died = missing_threads(threads)
            assert not died, f"worker threads died: {died}; {_describe(app, worker, sent)}"

        batch()
        good = app.tasks["hostile.echo"].apply_async(("still alive",), queue=QUEUE)
        assert good.get(timeout=10) == "still alive"
        assert not missing_threads(threads), f"worker threads died: {missing_threads(threads)}"
        assert getattr(worker, "fatal_error", None) is None

    counts = collections.Counter(worker.counts)  # after the stop: every ack is sent
    letters = dead_letters(app, QUEUE)
    print(
        f"\n{name}: {sent} inputs tried; {_acked(counts) - 1} run, "
        f"{len(letters)} dead-lettered; counts {dict(counts)}"
    )
    assert sent >= BATCHES * BATCH[0]
    assert app.transport.size(QUEUE) == 0
    assert _acked(counts) - 1 + len(letters) == sent, dict(counts)
    assert all(letter.reason.strip() for letter in letters)
    assert not (NOT_SETTLED - {"dead_lettered"}) & {k for k, n in counts.items() if n}, counts


def _describe(app: Petiole, worker: Worker, sent: int) -> str:
    letters = dead_letters(app, QUEUE)
    return (
        f"sent {sent}, queue holds {app.transport.size(QUEUE)}, "
        f"acked {_acked(worker.counts)}, dead-lettered {len(letters)}, "
        f"counts {dict(worker.counts)}"
    )
