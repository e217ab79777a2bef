"""Coverage-guided fuzzing (atheris) of the bytes a worker is handed, when atheris
is installed; skipped otherwise.

libFuzzer owns the process it runs in (it exits when done), so the fuzz runs in
a subprocess: this file run as a script. Seeded with a valid message for every
serializer x codec registered, it mutates whole payloads (framing, header
block, body) and hands each to a real worker (threads pool, in that process, on
SQLite); each must be run or dead-lettered with a reason before the next, with
every worker thread alive. After the last input a valid message must still run.
The subprocess writes how many inputs it tried; the test prints it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RUNS = 400  # libFuzzer -runs: a fixed bound, with -seed fixed below
SEED = 17
QUEUE = "fuzz-atheris"
TASK = "hostile.echo"
HERE = Path(__file__).resolve().parent


def test_atheris_mutated_payloads_are_each_run_or_dead_lettered(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris not installed (pip install atheris)")
    from hostile_kit import FUZZ_COUNTS

    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETIOLE_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), str(HERE.parent / "e2e"), env.get("PYTHONPATH")) if p
    )
    done = subprocess.run(
        [sys.executable, __file__, str(tmp_path), str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.exists(), f"exit {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    found = json.loads(report.read_text())
    name = "worker, atheris-mutated payloads (SQLite)"
    FUZZ_COUNTS[name] += found["tried"]
    print(f"\n{name}: {found['tried']} inputs tried; {found['dead']} dead-lettered")
    assert found["tried"] >= RUNS // 2, found
    assert found["final"] == "still alive", found
    assert found["empty_reasons"] == 0, found


def _main(directory: Path, report: Path) -> None:  # pragma: no cover - runs in the subprocess
    import atheris
    from hostile_app import register
    from hostile_kit import Stores, dead_letters, headers_for, missing_threads, petiole_threads

    from petiole.envelope import Envelope
    from petiole.testing import wait_until
    from petiole.testing.in_thread import start_worker

    stores = Stores("sqlite", f"sqlite:///{directory / 'petiole.db'}")
    probe = stores.app("probe")
    serializers = sorted(probe.plugins.provided("serializer"))
    app = register(stores.app(accept_content=serializers, max_body_bytes=16 * 1024))
    corpus = directory / "corpus"
    corpus.mkdir()
    for s in serializers:
        for c in sorted(app.plugins.provided("codec")):
            serializer, codec = app.serializer(s), app.codec(c)
            body = codec.encode(serializer.dumps([["seed", 1], {}]))
            envelope = Envelope(headers_for(TASK), body, serializer.content_type, codec.name)
            (corpus / f"{s}-{c}").write_bytes(envelope.to_bytes())

    with start_worker(
        app, pool="threads", concurrency=2, queues=[QUEUE], shutdown_timeout_s=5
    ) as w:
        threads = petiole_threads()
        tried = 0

        def settled() -> bool:
            acked = sum(n for k, n in w.counts.items() if k != "dead_lettered")
            return app.transport.size(QUEUE) == 0 and acked + len(dead_letters(app, QUEUE)) == tried

        def one_input(data: bytes) -> None:
            nonlocal tried
            app.transport.publish(QUEUE, data, message_id=str(uuid.uuid4()))
            tried += 1
            if not wait_until(settled, timeout_s=10):
                raise AssertionError(f"input {tried} not settled: {dict(w.counts)}")
            died = missing_threads(threads)
            if died:
                raise AssertionError(f"worker threads died: {died}")
            if tried == RUNS:  # the last input: a valid message must still run
                letters = dead_letters(app, QUEUE)
                good = app.tasks[TASK].apply_async(("still alive",), queue=QUEUE)
                summary = {
                    "tried": tried,
                    "dead": len(letters),
                    "empty_reasons": sum(1 for x in letters if not x.reason.strip()),
                    "final": good.get(timeout=10),
                }
                report.write_text(json.dumps(summary))

        atheris.Setup(
            [sys.argv[0], f"-runs={RUNS}", f"-seed={SEED}", "-max_len=4096", str(corpus)],
            one_input,
        )
        atheris.Fuzz()


if __name__ == "__main__":
    _main(Path(sys.argv[1]), Path(sys.argv[2]))
