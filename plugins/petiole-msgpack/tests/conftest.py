"""Every serializer test runs on both of msgpack's implementations: its C
extension (what users get from the wheels) and its pure-Python fallback."""

from __future__ import annotations

import pytest
from petiole_msgpack.serializer import MsgpackSerializer


@pytest.fixture(params=["c", "python"])
def serializer(request: pytest.FixtureRequest) -> MsgpackSerializer:
    serializer = MsgpackSerializer(pure_python=request.param == "python")
    assert serializer.implementation == request.param
    return serializer
