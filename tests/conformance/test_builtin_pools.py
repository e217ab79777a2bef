"""The core's built-in pools against the pool conformance suite."""

from __future__ import annotations

import pytest

from petiole.pools.asyncio_pool import AsyncioPool
from petiole.pools.base import Pool
from petiole.pools.processes import ProcessPool
from petiole.pools.solo import SoloPool
from petiole.pools.threads import ThreadPool
from petiole.testing.pool_suite import PoolSuite


class TestSoloPool(PoolSuite):
    runs_in_caller = True

    @pytest.fixture
    def pool(self) -> Pool:
        return SoloPool()


class TestThreadPool(PoolSuite):
    @pytest.fixture
    def pool(self) -> Pool:
        return ThreadPool(3)


class TestProcessPool(PoolSuite):
    isolates_crashes = True
    can_interrupt = True

    @pytest.fixture
    def pool(self) -> Pool:
        return ProcessPool(2)


class TestAsyncioPool(PoolSuite):
    @pytest.fixture
    def pool(self) -> Pool:
        return AsyncioPool(3)
