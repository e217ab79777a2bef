"""petiole.plugin_api: one import surface for plugin authors, without pytest."""

from __future__ import annotations

import subprocess
import sys

import pytest

import petiole.errors
import petiole.plugin_api as api
import petiole.testing
import petiole.testing.servers
from petiole.backend import ResultBackend
from petiole.hookspecs import hookimpl
from petiole.serializers import Serializer
from petiole.transport import Transport


@pytest.mark.parametrize("name", api.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(api, name) is not None


def test_exported_names_are_listed_once_and_dir_shows_them() -> None:
    assert len(api.__all__) == len(set(api.__all__))
    assert set(dir(api)) == set(api.__all__)


def test_importing_plugin_api_does_not_import_pytest() -> None:
    code = (
        "import sys, petiole.plugin_api\n"
        "leaked = sorted(m for m in sys.modules if m == 'pytest' or m.startswith("
        "('_pytest', 'petiole.testing')))\n"
        "assert not leaked, leaked\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_testing_helpers_load_on_first_access_as_the_kits_own_objects() -> None:
    assert api.TransportSuite is petiole.testing.TransportSuite
    assert api.ResultBackendSuite is petiole.testing.ResultBackendSuite
    assert api.SerializerSuite is petiole.testing.SerializerSuite
    assert api.ServerProcess is petiole.testing.servers.ServerProcess
    assert api.free_port is petiole.testing.servers.free_port
    assert api.require_binary is petiole.testing.servers.require_binary
    assert api.in_ci is petiole.testing.servers.in_ci


def test_contracts_are_the_cores_own_objects() -> None:
    assert api.Transport is Transport
    assert api.ResultBackend is ResultBackend
    assert api.Serializer is Serializer
    assert api.hookimpl is hookimpl
    assert api.ResultTooLarge is petiole.errors.ResultTooLarge


def test_every_error_class_of_the_core_is_exported() -> None:
    errors = {
        name
        for name, value in vars(petiole.errors).items()
        if isinstance(value, type) and issubclass(value, petiole.errors.PetioleError)
    }
    missing = errors - set(api.__all__)
    assert not missing, f"missing from petiole.plugin_api: {sorted(missing)}"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Transprot'"):
        _ = api.Transprot  # type: ignore[attr-defined]
