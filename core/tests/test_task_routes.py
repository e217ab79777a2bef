"""``task_routes``: the queue and options of a task, chosen by its name."""

from __future__ import annotations

import re
from typing import Any

import pytest

from petiole import Petiole
from petiole.envelope import Envelope
from petiole.errors import ConfigError
from petiole.routing import Router


@pytest.fixture
def routed(app: Petiole) -> Petiole:
    app.configure(
        task_routes={
            "proj.feeds.*": {"queue": "feeds", "priority": 7},
            "re:^proj\\.(video|audio)\\.": "media",
            "proj.mail.send": {"queue": "mail"},
        }
    )
    return app


def _queued(app: Petiole, queue: str) -> int:
    return app.transport.size(queue)


def test_globs_regexes_and_names_route_to_their_queues(routed: Petiole) -> None:
    for name in ("proj.feeds.fetch", "proj.video.encode", "proj.mail.send", "proj.other"):
        routed.send_task(name)
    assert [_queued(routed, q) for q in ("feeds", "media", "mail", "default")] == [1, 1, 1, 1]
    [delivery] = routed.transport.reserve(["feeds"], max_messages=1, wait_s=0, lease_s=5)
    assert Envelope.from_bytes(delivery.payload).priority == 7


def test_the_call_wins_over_the_route_and_the_route_over_the_task(routed: Petiole) -> None:
    @routed.task(name="proj.feeds.fetch", queue="from-task")
    def fetch() -> None:
        pass

    fetch.delay()
    fetch.apply_async(queue="from-call")
    assert _queued(routed, "feeds") == 1
    assert _queued(routed, "from-call") == 1
    assert _queued(routed, "from-task") == 0


def test_a_route_function_sees_the_call_and_may_decline(app: Petiole) -> None:
    def by_size(name: str, args: Any, kwargs: Any, options: Any) -> str | None:
        return "big" if kwargs.get("size", 0) > 100 else None

    app.configure(task_routes=[by_size, {"proj.*": "proj"}])
    app.send_task("proj.resize", kwargs={"size": 500})
    app.send_task("proj.resize", kwargs={"size": 5})
    assert (_queued(app, "big"), _queued(app, "proj")) == (1, 1)


def test_compiled_regexes_in_python_config() -> None:
    router = Router({re.compile(r"^a\.\d+$"): "digits"})
    assert router.route("a.12", (), {}, {}) == {"queue": "digits"}
    assert router.route("a.b", (), {}, {}) == {}


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ({"x": {"routing_key": "k"}}, "routes by queue alone"),
        ({"x": {"queu": "q"}}, "unknown route option.*queu"),
        ({"re:(": "q"}, "not a regular expression"),
        ([42], "a mapping of patterns or a function"),
    ],
)
def test_malformed_routes_say_what_is_wrong(routes: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Router(routes)
