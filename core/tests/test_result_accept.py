"""Results are decoded under an accept list, like task bodies: a client never
unpickles a record it did not choose to trust."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest

from petiole import Petiole, states
from petiole.backend import ResultRecord
from petiole.errors import ContentDisallowed
from petiole.result import GroupResult

PICKLE = "application/x-python-pickle"


class _TouchFile:
    """Unpickling this creates a file: the proof that a payload was run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, int]]:
        return (os.open, (str(self.path), os.O_CREAT | os.O_WRONLY))


def _plant_pickle(app: Petiole, task_id: str, marker: Path, **meta: object) -> None:
    app.backend.store(
        ResultRecord(
            task_id,
            states.SUCCESS,
            pickle.dumps(_TouchFile(marker)),
            PICKLE,
            None,
            time.time(),
            dict(meta),
        ),
        ttl_s=None,
    )


@pytest.mark.parametrize("read", ["get", "result"])
def test_pickle_result_is_refused_under_the_default_accept_list(
    app: Petiole, tmp_path: Path, read: str
) -> None:
    marker = tmp_path / "pwned"
    _plant_pickle(app, "t1", marker)
    result = app.AsyncResult("t1")
    with pytest.raises(ContentDisallowed) as caught:
        result.get(timeout=1) if read == "get" else result.result
    assert not marker.exists()
    message = str(caught.value)
    assert PICKLE in message
    assert "accept_content" in message


def test_result_accept_content_is_named_when_set(tmp_path: Path) -> None:
    app = Petiole(
        "t",
        broker="memory://result-accept",
        backend="memory://result-accept",
        config_file="/dev/null",
        accept_content=["json", "pickle"],
        result_accept_content=["json"],
    )
    marker = tmp_path / "pwned"
    _plant_pickle(app, "t2", marker)
    with pytest.raises(ContentDisallowed, match="result_accept_content"):
        app.AsyncResult("t2").get(timeout=1)
    assert not marker.exists()
    app.close()


def test_saved_group_of_untrusted_content_type_is_refused(app: Petiole, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _plant_pickle(app, "g1", marker, kind="group")
    with pytest.raises(ContentDisallowed):
        GroupResult.restore("g1", app)
    assert not marker.exists()


def test_results_of_an_accepted_content_type_still_decode(tmp_path: Path) -> None:
    app = Petiole(
        "t",
        broker="memory://result-accept-ok",
        backend="memory://result-accept-ok",
        config_file="/dev/null",
        result_accept_content=["json", "pickle"],
    )
    app.backend.store(
        ResultRecord("t3", states.SUCCESS, pickle.dumps({"a": 1}), PICKLE, None, time.time()),
        ttl_s=None,
    )
    assert app.AsyncResult("t3").get(timeout=1) == {"a": 1}
    app.close()
