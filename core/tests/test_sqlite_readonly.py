"""A SQLite file or directory Petiole may not write is reported as such, naming the path.

Root may write any file whatever its mode, so each case runs in a child process
that, when the tests run as root, drops its effective user to ``nobody`` first
(after its imports); files live in a fresh directory under the system temp dir,
which ``nobody`` can reach.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

NOBODY = 65534

_PRELUDE = """
import os, sys, threading
from petiole._builtins.sqlite_backend import create_backend
from petiole._builtins.sqlite_transport import create_transport
from petiole.errors import PetioleError
if os.geteuid() == 0:
    try:
        os.setegid(65534)
        os.seteuid(65534)
    except PermissionError:
        print("CANNOT-DROP-ROOT")
        sys.exit(0)
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory ``nobody`` can enter and write (and so can this user)."""
    path = Path(tempfile.mkdtemp(prefix="petiole-ro-"))
    path.chmod(0o777)
    yield path
    for folder, dirs, _files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o777)
    shutil.rmtree(path)


def _unprivileged(code: str, *args: str) -> str:
    """Run ``code`` as a user that file modes apply to; return what it printed."""
    proc = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "CANNOT-DROP-ROOT" in proc.stdout:
        pytest.skip("running as root without the right to change the effective user")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


_OPEN = """
try:
    create_transport(sys.argv[1], {})
    print("OPENED")
except PetioleError as exc:
    print(type(exc).__name__, exc)
"""


def _root_owned(path: Path) -> None:
    if os.geteuid() == 0:
        os.chown(path, 0, 0)


def test_read_only_file_is_refused_naming_it_and_the_setting(shared_dir: Path) -> None:
    db = shared_dir / "petiole.db"
    _unprivileged(_OPEN, f"sqlite:///{db}")
    db.chmod(0o444)
    _root_owned(db)
    out = _unprivileged(_OPEN, f"sqlite:///{db}")
    assert out == (
        f"ConfigError the SQLite file {db} is read-only; make it writable or point "
        "broker_url at a writable path"
    )


def test_file_in_a_read_only_directory_cannot_be_created(shared_dir: Path) -> None:
    folder = shared_dir / "locked"
    folder.mkdir()
    _root_owned(folder)
    folder.chmod(0o555)
    out = _unprivileged(_OPEN, f"sqlite:///{folder / 'petiole.db'}")
    assert out == (
        f"ConfigError the SQLite file {folder / 'petiole.db'} cannot be created: its directory "
        f"{folder} is read-only; make it writable or point broker_url at a writable path"
    )


def test_existing_file_in_a_read_only_directory_is_refused_naming_the_directory(
    shared_dir: Path,
) -> None:
    folder = shared_dir / "locked"
    folder.mkdir()
    folder.chmod(0o777)
    db = folder / "results.db"
    _unprivileged(_OPEN, f"sqlite:///{db}")
    _root_owned(folder)
    folder.chmod(0o555)
    code = """
    try:
        create_backend(sys.argv[1], {})
    except PetioleError as exc:
        print(type(exc).__name__, exc)
    """
    out = _unprivileged(code, f"sqlite:///{db}")
    assert out.startswith(
        f"ConfigError the directory {folder} of the SQLite file {db} is read-only"
    )
    assert out.endswith("make it writable or point backend_url at a writable path")


def test_file_made_read_only_while_open_fails_writes_saying_so(shared_dir: Path) -> None:
    db = shared_dir / "petiole.db"
    code = """
    transport = create_transport(sys.argv[1], {})
    os.chmod(sys.argv[2], 0o444)
    outcome = []

    def publish():  # a new thread opens a new connection, which sees the new mode
        try:
            transport.publish("q", b"x", message_id="m1")
            outcome.append("PUBLISHED")
        except PetioleError as exc:
            outcome.append(f"{type(exc).__name__} {exc}")

    thread = threading.Thread(target=publish)
    thread.start()
    thread.join()
    print(outcome[0])
    """
    out = _unprivileged(code, f"sqlite:///{db}", str(db))
    assert out.startswith("TransportError sqlite transport could not ")
    assert f": the SQLite file {db} is read-only (attempt to write a readonly database)" in out
    assert out.endswith("make it writable or point broker_url at a writable path")


def test_writable_file_in_a_writable_directory_opens(shared_dir: Path) -> None:
    assert _unprivileged(_OPEN, f"sqlite:///{shared_dir / 'petiole.db'}") == "OPENED"
