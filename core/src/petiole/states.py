"""Task states, in the order a task normally passes through them.

PENDING is never stored: it is what an unknown id reports.
"""

from __future__ import annotations

PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
RETRY = "RETRY"
REVOKED = "REVOKED"
#: Not a state Petiole sets: the default of ``Task.update_state``, by convention
#: a running task's progress (any other name works the same way).
PROGRESS = "PROGRESS"

ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED})
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
EXCEPTION_STATES = frozenset({FAILURE, RETRY, REVOKED})
UNREADY_STATES = ALL_STATES - READY_STATES
