"""A real ``redis-server`` for tests: this plugin's own, and the end-to-end tests.

Started on 127.0.0.1 with a free port and its data in a temporary directory,
with the append-only file on and ``appendfsync always`` (so a SIGKILLed server
loses no acknowledged write, as the fault tests require). When redis-server is
not installed, the test is skipped with the command to install it (a failure
under ``CI=true``, see :mod:`petiole.testing.servers`).

With ``tls=True`` it speaks TLS only (``rediss://``, no plain TCP port, so a
test cannot pass over plain TCP by mistake), with certificates made for it by
the ``openssl`` command: a throwaway CA, a server certificate for 127.0.0.1
signed by it, and a client certificate for mutual TLS (see :class:`ThrowawayPki`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from petiole.testing.servers import ManagedServer, ServerProcess, free_port, require_binary
from petiole_redis._connection import Address, Connection
from petiole_redis._errors import RedisError

if TYPE_CHECKING:
    import redis

INSTALL_HINT = "install it with: apt-get install -y redis-server"
OPENSSL_HINT = "apt-get install -y openssl"
# Who must show a client certificate: "yes" (mutual TLS), "optional" (checked
# when shown: one server serves clients with and without one) or "no".
TLS_AUTH_CLIENTS = ("yes", "optional", "no")
# Certificates for a test run, not for keeping: EC keys are made in
# milliseconds, and two days outlive any test session.
_KEY_OPTIONS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_DAYS = "2"


@dataclass(frozen=True, slots=True)
class ThrowawayPki:
    """A throwaway CA and the certificates it signed, as PEM files in one directory.

    Made by the ``openssl`` command rather than a Python library: it is what
    an operator would use, and the plugin adds no test-only dependency. The
    extensions are the ones strict verifiers (Python 3.13's default
    ``VERIFY_X509_STRICT``) insist on: a critical ``basicConstraints`` on the
    CA, key identifiers, and the server's address in ``subjectAltName`` (the
    host is checked against that, never against the common name).
    """

    ca_path: Path
    server_cert_path: Path
    server_key_path: Path
    client_cert_path: Path
    client_key_path: Path

    @classmethod
    def create(cls, directory: Path) -> ThrowawayPki:
        """Make the CA, then a server and a client certificate signed by it."""
        openssl = require_binary("openssl", install_hint=OPENSSL_HINT)
        ca, ca_key = directory / "ca.crt", directory / "ca.key"
        _openssl(
            openssl,
            "req", "-x509", *_KEY_OPTIONS, "-days", _DAYS,
            "-keyout", ca_key, "-out", ca,
            "-subj", "/CN=petiole test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
        )  # fmt: skip
        server = _signed(
            openssl,
            directory,
            "server",
            ca=(ca, ca_key),
            subject="/CN=127.0.0.1",
            extensions=[
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "extendedKeyUsage=serverAuth",
            ],
        )
        client = _signed(
            openssl,
            directory,
            "client",
            ca=(ca, ca_key),
            subject="/CN=petiole test client",
            extensions=["extendedKeyUsage=clientAuth"],
        )
        return cls(ca, *server, *client)


def _signed(
    openssl: str,
    directory: Path,
    name: str,
    *,
    ca: tuple[Path, Path],
    subject: str,
    extensions: list[str],
) -> tuple[Path, Path]:
    """A key and a certificate for it signed by ``ca`` (certificate, key): ``name``.crt, .key.

    ``openssl x509 -req -extfile`` rather than ``openssl req -CA`` (OpenSSL 3
    only), so that it works with any openssl a distribution ships."""
    cert, key, csr = (directory / f"{name}.{ext}" for ext in ("crt", "key", "csr"))
    extfile = directory / f"{name}.ext"
    extfile.write_text(
        "\n".join(
            [
                "basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "subjectKeyIdentifier=hash",
                "authorityKeyIdentifier=keyid:always",
                *extensions,
            ]
        )
        + "\n"
    )
    _openssl(openssl, "req", "-new", *_KEY_OPTIONS, "-keyout", key, "-out", csr, "-subj", subject)
    _openssl(
        openssl,
        "x509", "-req", "-in", csr, "-days", _DAYS,
        "-CA", ca[0], "-CAkey", ca[1], "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
        "-extfile", extfile, "-out", cert,
    )  # fmt: skip
    csr.unlink()
    extfile.unlink()
    return cert, key


def _openssl(openssl: str, *args: str | Path) -> None:
    """Run one ``openssl`` command; its own error message if it fails."""
    argv = [openssl, *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(
            f"openssl {args[0]} failed ({done.returncode}): {done.stderr.strip()}\n"
            f"command: {' '.join(argv)}"
        )


class RedisServer(ManagedServer):
    """A redis-server child process; :meth:`restart` keeps its port and data.

    With ``tls``, its one TCP port speaks TLS only, and ``tls_auth_clients``
    says whether a client must show a certificate (see ``TLS_AUTH_CLIENTS``;
    "optional" by default, so that one server serves tests with and without
    one). The unix socket stays plain.
    """

    def __init__(
        self,
        directory: Path,
        *,
        password: str | None = None,
        tls: bool = False,
        tls_auth_clients: str = "optional",
    ) -> None:
        if tls_auth_clients not in TLS_AUTH_CLIENTS:
            raise ValueError(f"tls_auth_clients must be one of {TLS_AUTH_CLIENTS}")
        binary = require_binary("redis-server", install_hint=INSTALL_HINT)
        self.directory = directory
        self.port = free_port()
        self.password = password
        self.socket_path = directory / "redis.sock"
        self.pki = ThrowawayPki.create(directory) if tls else None
        argv = [
            binary,
            *self._port_arguments(tls_auth_clients),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket_path),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--dir", str(directory),
            "--daemonize", "no",
        ]  # fmt: skip
        if password:
            argv += ["--requirepass", password]
        self.process = ServerProcess(
            "redis-server",
            argv,
            port=self.port,
            log_path=directory / "redis-server.log",
            ready=self._answers,
        )

    def _port_arguments(self, tls_auth_clients: str) -> list[str]:
        """``--port``, or with TLS ``--port 0`` (no plain TCP) and the TLS port and files."""
        if self.pki is None:
            return ["--port", str(self.port)]
        return [
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.pki.server_cert_path),
            "--tls-key-file", str(self.pki.server_key_path),
            "--tls-ca-cert-file", str(self.pki.ca_path),
            "--tls-auth-clients", tls_auth_clients,
        ]  # fmt: skip

    @property
    def tls(self) -> bool:
        return self.pki is not None

    @property
    def url(self) -> str:
        """The URL of its TCP port: ``rediss://`` with TLS (it has no plain one)."""
        auth = f":{self.password}@" if self.password else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    @property
    def tls_url(self) -> str:
        """``rediss://127.0.0.1:<port>/0``; connecting needs :attr:`ca_path` (see
        :meth:`tls_options`), as the CA is no system's."""
        self._pki()
        return self.url

    @property
    def ca_path(self) -> Path:
        return self._pki().ca_path

    @property
    def client_cert_path(self) -> Path:
        return self._pki().client_cert_path

    @property
    def client_key_path(self) -> Path:
        return self._pki().client_key_path

    def tls_options(self, *, client_cert: bool = False) -> dict[str, str]:
        """The plugin's options that trust this server's CA, and with
        ``client_cert`` show the client certificate (mutual TLS)."""
        pki = self._pki()
        options = {"ssl_ca_certs": str(pki.ca_path)}
        if client_cert:
            options["ssl_certfile"] = str(pki.client_cert_path)
            options["ssl_keyfile"] = str(pki.client_key_path)
        return options

    def _pki(self) -> ThrowawayPki:
        if self.pki is None:
            raise RuntimeError("this RedisServer was started without tls=True")
        return self.pki

    @property
    def unix_url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"unix://{auth}{self.socket_path}?db=0"

    def kill(self) -> None:
        """SIGKILL: with ``appendfsync always`` every acknowledged write survives."""
        super().kill()

    def restart(self, *, keep_data: bool = True) -> None:
        """SIGKILL, then start again on the same port. Without ``keep_data`` its
        files are deleted in between: it comes back empty, with a new ``run_id``,
        as a server without persistence does."""
        self.kill()
        if not keep_data:
            for name in ("appendonlydir", "appendonly.aof", "dump.rdb"):
                path = self.directory / name
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        self.start()

    def client(self, **kwargs: Any) -> redis.Redis:
        """A plain redis-py client, for tests to look into the server (redis-py is
        in the plugin's ``test`` extra, not among its dependencies); with TLS, one
        that trusts the CA and shows the client certificate (so it is let in
        whatever ``tls_auth_clients`` says)."""
        import redis

        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, **self._tls_kwargs(), **kwargs
        )

    def _tls_kwargs(self) -> dict[str, Any]:
        if self.pki is None:
            return {}
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.pki.ca_path),
            "ssl_certfile": str(self.pki.client_cert_path),
            "ssl_keyfile": str(self.pki.client_key_path),
        }

    def _answers(self) -> bool:
        """Ready once it answers PING (not merely accepts connections: it may be
        loading), over TLS when it has it: that the TLS port accepts TCP
        connections says nothing of whether a handshake with its certificate works.
        Asked with the plugin's own connection, so that servers start where only
        the plugin is installed (another plugin's tests)."""
        pki = self.pki
        address = Address(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            tls=pki is not None,
            connect_timeout_s=1.0,
            socket_timeout_s=1.0,
            ssl_ca_certs=str(pki.ca_path) if pki else "",
            ssl_certfile=str(pki.client_cert_path) if pki else "",
            ssl_keyfile=str(pki.client_key_path) if pki else "",
        )
        connection = Connection(address)
        try:
            return bool(connection.command("PING") == b"PONG")
        except RedisError:
            return False
        finally:
            connection.disconnect()
