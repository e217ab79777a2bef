"""Worker pools: what runs tasks once the consumer has accepted them."""

from petiole.pools.base import Job, Outcome, Pool, PoolFactory, Resizable, Runner

__all__ = ["Job", "Outcome", "Pool", "PoolFactory", "Resizable", "Runner"]
