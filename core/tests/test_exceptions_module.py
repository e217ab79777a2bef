"""petiole.exceptions: Celery's celery.exceptions names, for code that comes from Celery."""

from __future__ import annotations

import pytest

from petiole import errors


def test_celery_s_names_are_petiole_s_errors() -> None:
    from petiole.exceptions import (
        MaxRetriesExceededError,
        Retry,
        SoftTimeLimitExceeded,
        TaskRevokedError,
        TimeoutError,
    )

    assert TaskRevokedError is errors.TaskRevoked
    assert TimeoutError is errors.ResultTimeout
    assert (Retry, SoftTimeLimitExceeded, MaxRetriesExceededError) == (
        errors.Retry,
        errors.SoftTimeLimitExceeded,
        errors.MaxRetriesExceededError,
    )


def test_a_celery_name_petiole_lacks_fails_to_import_saying_what_to_do() -> None:
    with pytest.raises(
        ImportError, match=r"has no Reject \(Celery's celery\.exceptions\.Reject\): "
    ):
        from petiole.exceptions import Reject  # noqa: F401
