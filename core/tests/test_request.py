"""``self.request`` of a bound task: Petiole's fields and Celery's names for them."""

from __future__ import annotations

from typing import Any

import pytest

from petiole import Petiole, group
from petiole.request import Request
from petiole.testing.in_thread import start_worker


def test_celerys_request_names_read_what_the_request_holds(app: Petiole) -> None:
    seen: dict[str, Any] = {}

    @app.task(name="look", bind=True)
    def look(self: Any) -> None:
        request = self.request
        seen.update(
            eager=request.is_eager,
            direct=request.called_directly,
            correlation=request.correlation_id == request.id,
            group=request.group,
            info=request.delivery_info,
        )

    with start_worker(app):
        look.apply_async(queue="default", priority=7).get(timeout=10)
        assert seen == {
            "eager": False,
            "direct": False,
            "correlation": True,
            "group": None,
            "info": {"exchange": "", "routing_key": "default", "priority": 7, "redelivered": False},
        }
        result = group(look.s(), look.s()).apply_async()
        result.get(timeout=10)
        assert seen["group"] == result.id
    look.apply().get()
    assert (seen["eager"], seen["direct"]) == (True, False)
    look()  # called as a function: no message behind it
    assert seen["direct"] is True


def test_a_name_the_request_lacks_says_what_it_has() -> None:
    with pytest.raises(AttributeError, match=r"has no 'origin' \(it has: .*delivery_info"):
        _ = Request(id="1", task="t").origin
