"""The worker: consumes messages, runs them on a pool, settles each one."""

from petiole.worker.worker import Worker

__all__ = ["Worker"]
