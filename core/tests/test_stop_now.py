"""A worker asked twice to stop exits within STOP_NOW_S even when its broker does
not take its messages back (it would otherwise hang on a broker that is down)."""

from __future__ import annotations

import logging
import os
import signal
import threading

import pytest

from petiole import Petiole
from petiole._builtins.memory import MemoryTransport
from petiole.testing.in_thread import start_worker
from petiole.transport import Delivery
from petiole.worker import worker as worker_module


class Unanswering(MemoryTransport):
    """A broker that stops answering returns: ``nack`` hangs."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = threading.Event()

    def nack(self, delivery: Delivery, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        self.hang.wait(60)  # the server went silent (until the test ends)
        super().nack(delivery, requeue=requeue, delay_s=delay_s)


class Exited(Exception):
    pass


def test_a_second_stop_exits_though_the_broker_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = Petiole("stopnow", broker="memory://", backend="memory://")
    app._transport = Unanswering()
    started, release = threading.Event(), threading.Event()

    @app.task(name="hold")
    def hold() -> None:
        started.set()
        release.wait(30)

    def exit_now(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(worker_module, "STOP_NOW_S", 0.2)
    monkeypatch.setattr(os, "_exit", exit_now)
    for _ in range(3):
        hold.delay()
    with start_worker(app, pool="threads", concurrency=1) as worker:
        try:
            assert started.wait(10)
            worker._on_signal(signal.SIGTERM, None)
            with caplog.at_level(logging.WARNING), pytest.raises(Exited):
                worker._on_signal(signal.SIGTERM, None)  # held messages: nack hangs
        finally:
            app.transport.hang.set()  # type: ignore[attr-defined]
            release.set()
    assert "did not take the messages back within 0.2 s" in caplog.text
