"""Every serializer test runs on both of PyYAML's implementations: libyaml's C
parser and emitter (what users get from the wheels) and the pure-Python ones."""

from __future__ import annotations

import pytest
import yaml
from petiole_yaml.serializer import YamlSerializer

from petiole.plugin_api import in_ci


@pytest.fixture(params=["libyaml", "python"])
def serializer(request: pytest.FixtureRequest) -> YamlSerializer:
    return make_serializer(request.param)


def make_serializer(implementation: str) -> YamlSerializer:
    if implementation == "libyaml" and not yaml.__with_libyaml__:
        if in_ci():  # the wheels include libyaml: its absence in CI is a broken install
            pytest.fail("PyYAML was built without libyaml")
        pytest.skip("PyYAML was built without libyaml: reinstall it from a wheel")
    serializer = YamlSerializer(use_libyaml=implementation == "libyaml")
    assert serializer.implementation == implementation
    return serializer
