"""The README's openssl commands and configuration files, as written, end to end.

Skipped where ``openssl`` is not on PATH (failed instead under CI: servers.apt
lists it). Its ``shell`` blocks run in order in one bash, and its ``file`` blocks are
written where they say, with ``/etc/petiole`` standing for a temporary
directory; then a producer and a worker built from each signer's two config
files (on an in-memory broker) run a task, and the worker refuses a message the
producer signed once a byte of it has changed.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from petiole_auth.ed25519 import Ed25519Signer

from petiole import Petiole
from petiole.plugin_api import require_binary, wait_until
from petiole.testing.in_thread import start_worker

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"^<!-- snippet: (?P<kind>\w+)(?P<args>[^>]*)-->\n```\w*\n(?P<text>.*?)^```$", re.M | re.S
)


def _blocks(kind: str) -> list[tuple[str, str]]:
    """``(annotation arguments, text)`` of the README's code blocks of ``kind``."""
    return [
        (m["args"].strip(), m["text"])
        for m in BLOCK.finditer(README.read_text())
        if m["kind"] == kind
    ]


def test_every_code_block_of_the_readme_is_annotated() -> None:
    fences = len(re.findall(r"^```\w+$", README.read_text(), re.M))
    assert fences == len(BLOCK.findall(README.read_text())) > 0


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The directory standing for /etc/petiole, after the README's commands, and their output."""
    require_binary("openssl", install_hint="apt-get install openssl; the README's commands use it")
    root = tmp_path_factory.mktemp("etc-petiole")
    script = "\n".join(text for _, text in _blocks("shell"))
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace("/etc/petiole", str(root))],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for args, text in _blocks("file"):
        path = root / args
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("/etc/petiole", str(root)))
    return root, done.stdout


def test_the_readme_makes_the_files_it_configures(made: tuple[Path, str]) -> None:
    root, _ = made
    for name in ("web.key", "web.pub.pem", "billing.key", "billing.crt", "worker1.crt"):
        assert (root / "keys" / name).is_file(), name
    assert sorted(p.name for p in (root / "trusted").iterdir()) == ["billing.crt", "worker1.crt"]


def test_the_readmes_fingerprint_and_key_id_are_what_refusals_show(made: tuple[Path, str]) -> None:
    root, printed = made
    certificate = x509.load_pem_x509_certificate((root / "keys" / "billing.crt").read_bytes())
    fingerprint = ":".join(f"{b:02X}" for b in certificate.fingerprint(hashes.SHA256()))
    assert f"sha256 Fingerprint={fingerprint}" in printed
    app = Petiole("t", config_file=str(root / "config" / "ed25519-producer.toml"))
    signer = app.signer()
    assert isinstance(signer, Ed25519Signer)
    assert signer.key_id is not None
    assert signer.key_id in printed.split()


@pytest.mark.parametrize("signer", ["ed25519", "x509"])
def test_the_readmes_configuration_runs_signed_tasks_and_refuses_changed_ones(
    made: tuple[Path, str], signer: str
) -> None:
    root, _ = made
    store = f"memory://{uuid.uuid4().hex}"
    producer, worker = (
        Petiole(
            role,
            config_file=str(root / "config" / f"{signer}-{role}.toml"),
            broker=store,
            backend=store,
        )
        for role in ("producer", "worker")
    )
    assert (producer.settings.signer, worker.settings.require_signature) == (signer, True)

    @worker.task(name="readme.add")
    def add(x: int, y: int) -> int:
        return x + y

    changed = producer.send_task("readme.add", [20, 22])
    (delivery,) = producer.transport.reserve(["default"], max_messages=1, wait_s=1, lease_s=30)
    producer.transport.ack(delivery)
    producer.transport.publish("default", delivery.payload.replace(b"[20,22]", b"[20,23]"))
    with start_worker(worker):
        assert producer.send_task("readme.add", [2, 3]).get(timeout=10) == 5
        assert wait_until(lambda: len(worker.transport.dead_letters("default")) == 1, timeout_s=10)
    (letter,) = worker.transport.dead_letters("default")
    assert f"bad {signer} signature" in letter.reason
    assert producer.backend.get(changed.id) is None
    producer.close()
    worker.close()
