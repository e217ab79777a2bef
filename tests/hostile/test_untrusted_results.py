"""A result store anyone else can write to is as untrusted as a broker: a pickle
payload planted in it must never be unpickled by a client that accepts only JSON."""

from __future__ import annotations

import pathlib
import pickle
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hostile_kit import PICKLE, Stores

from petiole import states
from petiole.backend import ResultRecord
from petiole.errors import ContentDisallowed
from petiole.result import AsyncResult, GroupResult


class _TouchOnLoad:
    """Unpickling this creates ``path``: the proof that a payload was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _plant_pickle(stores: Stores, marker: Path, state: str = states.SUCCESS, **meta: Any) -> str:
    """Write a pickle result record straight into the store; return its task id."""
    task_id = str(uuid.uuid4())
    record = ResultRecord(
        task_id, state, pickle.dumps(_TouchOnLoad(marker)), PICKLE, None, time.time(), meta
    )
    stores.app("planter").backend.store(record, ttl_s=None)
    return task_id


def _assert_refused(exc: ContentDisallowed) -> None:
    message = str(exc)
    assert PICKLE in message, message
    assert "result_accept_content" in message, message


def test_the_planted_payload_runs_its_reduce_when_unpickled(tmp_path: Path) -> None:
    # The probe itself works: without the accept check, loading it creates the file.
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(_TouchOnLoad(marker)))
    assert marker.exists()


@pytest.mark.parametrize("state", [states.SUCCESS, states.FAILURE])
def test_pickle_result_is_refused_by_get_without_running_its_reduce(
    stores: Stores, tmp_path: Path, state: str
) -> None:
    marker = tmp_path / "unpickled"
    task_id = _plant_pickle(stores, marker, state)
    result = AsyncResult(task_id, stores.app())
    with pytest.raises(ContentDisallowed) as refused:
        result.get(timeout=5)
    assert not marker.exists()
    _assert_refused(refused.value)


def test_pickle_result_is_refused_by_the_result_property_without_running_its_reduce(
    stores: Stores, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    task_id = _plant_pickle(stores, marker)
    result = AsyncResult(task_id, stores.app())
    with pytest.raises(ContentDisallowed) as refused:
        _ = result.result
    assert not marker.exists()
    _assert_refused(refused.value)


def test_pickle_group_record_is_refused_by_restore_without_running_its_reduce(
    stores: Stores, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    group_id = _plant_pickle(stores, marker, kind="group")
    with pytest.raises(ContentDisallowed) as refused:
        GroupResult.restore(group_id, stores.app())
    assert not marker.exists()
    _assert_refused(refused.value)


@pytest.mark.slow
@pytest.mark.parametrize("wait", [False, True])
def test_pickle_result_is_refused_by_the_cli_without_running_its_reduce(
    stores: Stores, tmp_path: Path, wait: bool
) -> None:
    marker = tmp_path / "unpickled"
    task_id = _plant_pickle(stores, marker)
    command = [sys.executable, "-m", "petiole", "result", task_id]
    if wait:
        command += ["--wait", "--timeout", "5"]
    shown = subprocess.run(
        command, cwd=tmp_path, env=stores.env(), capture_output=True, text=True, timeout=60
    )
    output = shown.stdout + shown.stderr
    assert not marker.exists()
    assert shown.returncode != 0, output
    assert "Traceback" not in output, output
    assert PICKLE in output, output
    assert "result_accept_content" in output, output


def test_pickle_result_is_read_when_the_app_accepts_pickle_results(
    stores: Stores, tmp_path: Path
) -> None:
    # The refusal is the accept list's doing: trusting pickle results reads them.
    marker = tmp_path / "unpickled"
    task_id = _plant_pickle(stores, marker)
    app = stores.app(result_accept_content=["json", "pickle"])
    AsyncResult(task_id, app).get(timeout=5)
    assert marker.exists()
