"""No credential given to Petiole ever appears in what it prints: errors, log lines
(of the worker and the CLI), or anything a command writes to stdout or stderr.

Each test runs a realistic flow with known secret strings and searches all of
its output for them: the exception text, every log record (``caplog`` at DEBUG),
``capsys``, and a subprocess's stdout and stderr.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Workers

from petiole import Petiole
from petiole.errors import PetioleError
from petiole.testing.in_thread import start_worker
from petiole.testing.servers import free_port, require_module

HERE = Path(__file__).resolve().parent

PASSWORD = "hunter2Zq8Jx"
# Unencoded, so that a URL parser cuts the URL inside it; no piece may show.
AWKWARD = "Aa1x/Bb2x#Cc3x?Dd4x@Ee5x"
AWKWARD_PIECES = ("Aa1x", "Bb2x", "Cc3x", "Dd4x", "Ee5x")
ACCESS_KEY_ID = "AKIAZQ8JXEXAMPLE1234"
SECRET_KEY = "wJalrXUtnFEMIK7MDENGbPxRfiCYzQ8JxKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEzQ8JxSESSIONTOKEN"
SECRETS = (PASSWORD, *AWKWARD_PIECES, SECRET_KEY, SESSION_TOKEN)


@pytest.fixture
def output(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[list[str]]:
    """Texts a test adds (exception messages, subprocess output); on teardown every
    one of them, every log record and everything printed is checked for secrets."""
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    yield texts
    printed = capsys.readouterr()
    everything = "\n".join([*texts, caplog.text, printed.out, printed.err])
    for record in caplog.records:  # the arguments too, not only the formatted line
        everything += "\n" + repr(record.args) + repr(record.exc_text)
    shown = [secret for secret in SECRETS if secret in everything]
    assert not shown, f"secrets {shown} appear in:\n{everything}"


def _refused(output: list[str], app: Petiole, component: str) -> PetioleError:
    with pytest.raises(PetioleError) as info:
        getattr(app, component)
    output.append(str(info.value))
    return info.value


def _app(**settings: Any) -> Petiole:
    settings.setdefault("broker_url", "memory://secrets")
    settings.setdefault("backend_url", "memory://secrets")
    return Petiole("secrets", config_file="/dev/null", **settings)


# -- errors about a URL ------------------------------------------------------------------

BROKER_URLS = {
    "redis-bad-value": f"redis://:{PASSWORD}@127.0.0.1:1/0?socket_timeout_s=soon",
    "redis-password-in-query": f"redis://127.0.0.1:1/0?password={PASSWORD}",
    "redis-unencoded-password": f"redis://:{AWKWARD}@127.0.0.1:1/0",
    "rediss-unknown-and-bad": f"rediss://u:{PASSWORD}@h:1/0?ssl_cert_reqs=maybe&pwd={PASSWORD}",
    "unix-unencoded-password": f"unix://:{AWKWARD}@/run/redis.sock?db=0",
    "mongo-secret-client-option": (
        f"mongodb://u:{PASSWORD}@h:1/db?tlsCertificateKeyFilePassword={PASSWORD}&bogus=1"
    ),
    "mongo-aws-session-token": (
        f"mongodb://h:1/db?authMechanismProperties=AWS_SESSION_TOKEN:{SESSION_TOKEN}&bogus=1"
    ),
    "mongo-unencoded-password": f"mongodb://u:{AWKWARD}@h:1/db",
    "sqlite-with-a-host": f"sqlite://u:{AWKWARD}@host/x.db",
    "sqlite-unknown-option": f"sqlite:///x.db?password={PASSWORD}",
    "sqs-query-keys": (
        f"sqs://?aws_access_key_id={ACCESS_KEY_ID}&aws_secret_access_key={SECRET_KEY}"
        f"&aws_session_token={SESSION_TOKEN}"
    ),
    "sqs-userinfo-keys": f"sqs://{ACCESS_KEY_ID}:{SECRET_KEY}@/",
    "sqs-unencoded-secret-key": f"sqs://{ACCESS_KEY_ID}:{AWKWARD}@/",
}

BACKEND_URLS = {
    "memcached-token-option": f"memcached://h:11211?token={PASSWORD}",
    "memcached-unencoded-password": f"memcached://u:{AWKWARD}@h:11211",
    "cassandra-bad-value": f"cassandra://u:{PASSWORD}@h/ks?read_consistency=SOME",
    "cassandra-password-option": f"cassandra://h/ks?password={PASSWORD}",
    "cassandra-unencoded-password": f"cassandra://u:{AWKWARD}@h1,h2/ks",
}


@pytest.mark.parametrize("url", BROKER_URLS.values(), ids=BROKER_URLS.keys())
def test_a_refused_broker_url_is_reported_without_its_secrets(
    output: list[str], url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_plugin_of(url)
    monkeypatch.chdir(tmp_path)
    error = _refused(output, _app(broker_url=url), "transport")
    assert "***" in str(error) or "percent-encoded" in str(error), error


@pytest.mark.parametrize("url", BACKEND_URLS.values(), ids=BACKEND_URLS.keys())
def test_a_refused_backend_url_is_reported_without_its_secrets(output: list[str], url: str) -> None:
    _require_plugin_of(url)
    error = _refused(output, _app(backend_url=url), "backend")
    assert "***" in str(error) or "percent-encoded" in str(error), error


def test_sqs_keys_given_as_broker_options_are_refused_without_their_values(
    output: list[str],
) -> None:
    require_module("petiole_sqs", install_hint="pip install -e plugins/petiole-sqs")
    options = {"aws_secret_access_key": SECRET_KEY, "aws_session_token": SESSION_TOKEN}
    error = _refused(output, _app(broker_url="sqs://", broker_options=options), "transport")
    assert "aws_secret_access_key" in str(error)


def test_a_settings_table_in_the_environment_is_reported_without_its_secrets(
    output: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PETIOLE_BROKER_OPTIONS", f'{{"password": "{PASSWORD}", "db": ')
    app = Petiole("secrets", config_file="/dev/null")
    error = _refused(output, app, "settings")
    assert "PETIOLE_BROKER_OPTIONS" in str(error)


def _require_plugin_of(url: str) -> None:
    plugin = {"redis": "redis", "rediss": "redis", "unix": "redis", "mongodb": "mongo"}.get(
        url.partition(":")[0], url.partition(":")[0]
    )
    if plugin != "sqlite":
        require_module(f"petiole_{plugin}", install_hint=f"pip install -e plugins/petiole-{plugin}")


# -- a worker's log lines ----------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_module("petiole_redis", install_hint="pip install -e plugins/petiole-redis")
    from petiole_redis.testing import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis-auth"), password=PASSWORD).start()
    yield server
    server.stop()


def test_the_worker_ready_line_shows_the_broker_with_its_password_masked(
    output: list[str], redis_with_password: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = redis_with_password.url
    app = Petiole("secrets", broker=url, backend=url, config_file="/dev/null")
    try:
        with start_worker(app):
            pass  # the worker logs its ready line before start_worker yields
    finally:
        app.close()
    [ready] = [r.getMessage() for r in caplog.records if " ready: " in r.getMessage()]
    assert f"broker=redis://:***@127.0.0.1:{redis_with_password.port}/0" in ready


def test_a_worker_process_never_prints_the_broker_password(
    output: list[str], redis_with_password: Any, tmp_path: Path
) -> None:
    env = _env(
        PETIOLE_BROKER_URL=redis_with_password.url, PETIOLE_BACKEND_URL=redis_with_password.url
    )
    workers = Workers(env, tmp_path, app_module="hostile_app")
    try:
        workers.start("-P", "threads", "-c", "1", "-l", "DEBUG")
        workers.wait_ready()
    finally:
        workers.stop_all()
    log = workers.logs(tail_chars=1_000_000)
    output.append(log)
    assert f"redis://:***@127.0.0.1:{redis_with_password.port}/0" in log


# -- the command line ----------------------------------------------------------------------

CLI_ENVIRONMENTS = {
    "unreachable-redis": {
        "PETIOLE_BROKER_URL": f"redis://:{PASSWORD}@127.0.0.1:{{port}}/0?startup_timeout_s=0",
        "PETIOLE_BACKEND_URL": f"redis://:{PASSWORD}@127.0.0.1:{{port}}/0?startup_timeout_s=0",
    },
    "unencoded-redis-password": {"PETIOLE_BROKER_URL": f"redis://:{AWKWARD}@127.0.0.1:1/0"},
    "redis-password-in-query": {"PETIOLE_BROKER_URL": f"redis://127.0.0.1:1/0?password={PASSWORD}"},
    "sqs-keys-in-query": {
        "PETIOLE_BROKER_URL": (
            f"sqs://?region=us-east-1&aws_secret_access_key={SECRET_KEY}"
            f"&aws_session_token={SESSION_TOKEN}"
        )
    },
    "options-table-not-json": {
        "PETIOLE_BROKER_URL": "sqlite:///petiole.db",
        "PETIOLE_BROKER_OPTIONS": f'{{"password": "{PASSWORD}", ',
    },
}
COMMANDS = {
    "purge": ["purge", "-f"],
    "call": ["call", "hostile.echo"],
    "worker": ["worker", "-A", "hostile_app", "-P", "solo"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize("settings", CLI_ENVIRONMENTS.values(), ids=CLI_ENVIRONMENTS.keys())
def test_cli_errors_about_the_broker_never_show_its_secrets(
    output: list[str], settings: dict[str, str], command: list[str], tmp_path: Path
) -> None:
    port = str(free_port())  # nothing listens there
    env = _env(**{name: value.replace("{port}", port) for name, value in settings.items()})
    run = subprocess.run(
        [sys.executable, "-m", "petiole", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output.extend([run.stdout, run.stderr])
    assert run.returncode != 0
    assert "Error: " in run.stderr, run.stderr


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETIOLE_")}
    env.update(PYTHONPATH=str(HERE), **settings)
    return env
