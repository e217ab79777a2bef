"""Dead-letter administration is optional: without it the core says where to look."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from petiole import Petiole
from petiole.cli import cli
from petiole.cli.context import CliState
from petiole.transport import DeadLetterAdmin


class _BrokerKeepsDeadLetters:
    """A transport whose broker administers dead letters itself (as RabbitMQ's
    dead-letter exchange would): everything but DeadLetterAdmin, by delegation."""

    _admin = ("dead_letters", "requeue_dead_letters", "purge_dead_letters")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.capabilities = inner.capabilities

    def __getattr__(self, name: str) -> Any:
        if name in self._admin:
            raise AttributeError(name)
        return getattr(self._inner, name)


def _app_without_admin(app: Petiole) -> Petiole:
    app._transport = _BrokerKeepsDeadLetters(app.transport)  # type: ignore[assignment]
    assert not isinstance(app.transport, DeadLetterAdmin)
    return app


def test_petiole_dlq_names_the_brokers_own_tools_when_the_transport_has_no_admin(
    app: Petiole, monkeypatch: pytest.MonkeyPatch
) -> None:
    _app_without_admin(app)
    monkeypatch.setattr(CliState, "app", lambda self: app)
    result = CliRunner().invoke(cli, ["dlq", "list"])
    assert result.exit_code != 0
    assert "use the broker's own tools" in result.output


def test_why_still_explains_a_pending_task_without_dead_letter_admin(app: Petiole) -> None:
    _app_without_admin(app)
    sent = app.send_task("proj.add", [1, 2])
    assert "'default' holds 1 message" in sent.why()


def test_the_builtin_transports_administer_their_dead_letters(app: Petiole) -> None:
    assert isinstance(app.transport, DeadLetterAdmin)
