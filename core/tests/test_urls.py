from __future__ import annotations

import pytest

from petiole.urls import mask_password


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:secret@host/0?x=1", "redis://user:***@host/0?x=1"),
        ("mongodb://u:p@h1:1,h2:2/db", "mongodb://u:***@h1:1,h2:2/db"),
        ("cassandra://u:p%40ss@10.0.0.1,10.0.0.2/ks", "cassandra://u:***@10.0.0.1,10.0.0.2/ks"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("sqlite:////tmp/p.db", "sqlite:////tmp/p.db"),
    ],
)
def test_passwords_are_masked_and_nothing_else_changes(url: str, masked: str) -> None:
    assert mask_password(url) == masked
