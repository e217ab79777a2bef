"""The asyncio pool: ``async def`` tasks run concurrently on one event loop.

One thread in the worker runs an event loop; up to ``concurrency`` jobs run on
it at once. ``async def`` tasks are awaited on the loop and cancelled at their
time limit (soft, else hard), which raises ``CancelledError`` at the ``await``
they are blocked in — so, unlike a thread, an asyncio task can always be
stopped. Plain functions, and the blocking calls of settling (the result
store, the broker), run in a thread pool of ``concurrency`` threads so they
never stall the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any

from petiole.config import Settings
from petiole.errors import ConfigError
from petiole.pools.base import Job, Outcome, Runner


class AsyncioPool:
    name = "asyncio"

    def __init__(self, concurrency: int, settings: Settings | None = None) -> None:
        self.concurrency = max(1, concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: set[concurrent.futures.Future[None]] = set()
        self._lock = threading.Lock()
        self._terminated = False

    def start(self, runner: Runner) -> None:
        if not hasattr(runner, "run_async"):
            raise ConfigError("the asyncio pool needs a runner with run_async()")
        self._runner: Any = runner  # checked above: it has run_async
        loop = asyncio.new_event_loop()
        loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(self.concurrency, "petiole-asyncio-sync")
        )
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="petiole-asyncio-loop", daemon=True
        )
        self._thread.start()

    async def _run(self, job: Job, on_done: Callable[[Job, Outcome], None]) -> None:
        outcome: Outcome = await self._runner.run_async(job)
        if not self._terminated:
            # Settling blocks on the broker: keep it off the loop.
            await asyncio.get_running_loop().run_in_executor(None, on_done, job, outcome)

    def submit(self, job: Job, on_done: Callable[[Job, Outcome], None]) -> None:
        assert self._loop is not None, "start() the pool first"
        future = asyncio.run_coroutine_threadsafe(self._run(job, on_done), self._loop)
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._running.discard(future)

    def stop(self, *, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            running = list(self._running)
        _, not_done = concurrent.futures.wait(running, timeout=timeout_s)
        if not_done:
            return False  # the loop keeps running: terminate() cancels what is left
        self._close(max(0.0, deadline - time.monotonic()))
        return True

    def terminate(self) -> None:
        self._terminated = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._lock:
            running = list(self._running)

        def cancel_all() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()

        loop.call_soon_threadsafe(cancel_all)
        # Let the loop deliver the cancellations before it stops.
        concurrent.futures.wait(running, timeout=1.0)
        self._close(1.0)

    def _close(self, timeout_s: float) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        if not thread.is_alive():
            loop.close()
