"""What `petiole worker` starts for its options: one worker, or worker processes
under a supervisor; prefork, the default, as solo worker processes."""

from __future__ import annotations

import os

import pytest

from petiole.config import Settings
from petiole.errors import ConfigError
from petiole.worker.layout import Layout, layout


def plan(settings: Settings | None = None, **given: object) -> Layout:
    options: dict[str, object] = {
        "pool": None,
        "worker_processes": None,
        "concurrency": None,
        "prefetch_multiplier": None,
        "autoscaling": False,
    }
    options.update(given)
    return layout(settings or Settings(), **options)  # type: ignore[arg-type]


def test_the_default_is_one_solo_worker_process_per_cpu_holding_four_places_each() -> None:
    default = plan()
    assert default == Layout(os.cpu_count() or 1, "solo", None, 16)
    assert default.prefork


def test_prefork_counts_its_processes_as_celery_counts_concurrency() -> None:
    assert plan(concurrency=3).processes == 3
    assert plan(Settings(worker_concurrency=5)).processes == 5
    assert plan(concurrency=3, worker_processes=2).processes == 2  # --workers wins


def test_a_prefetch_multiplier_of_one_holds_one_message_per_process() -> None:
    assert plan(prefetch_multiplier=1).prefetch_multiplier == 1
    assert plan(prefetch_multiplier=16).prefetch_multiplier == 64


def test_another_pool_runs_in_this_process_unless_worker_processes_are_asked() -> None:
    assert plan(pool="processes", concurrency=2) == Layout(0, "processes", 2, None)
    assert plan(Settings(worker_pool="threads"), worker_processes=2).processes == 2
    assert not plan(pool="threads", worker_processes=2).prefork


def test_prefork_cannot_autoscale_and_says_which_pools_can() -> None:
    with pytest.raises(ConfigError, match="-P processes or -P threads"):
        plan(autoscaling=True)


def test_a_negative_worker_processes_is_refused() -> None:
    with pytest.raises(ConfigError, match="not -1"):
        plan(worker_processes=-1)


def test_without_fork_prefork_is_one_worker_with_the_registrys_prefork(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(os, "fork")
    assert plan(concurrency=2) == Layout(0, None, 2, None)
