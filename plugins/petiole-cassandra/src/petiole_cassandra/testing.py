"""A real Apache Cassandra 5.0.9 node for tests: this plugin's own, and the end-to-end tests.

No start script ships with Cassandra's jars, so this module is the start script:

1. The jars: ``org.apache.cassandra:cassandra-all:5.0.9`` and its runtime
   dependencies, fetched from Maven Central once with ``mvn dependency:copy-dependencies``
   into a cache folder (``$PETIOLE_TEST_CACHE/cassandra-5.0.9/lib``, else
   ``~/.cache/petiole/cassandra-5.0.9/lib``; about 67 MB). Later runs reuse it
   without touching the network.
2. A generated ``cassandra.yaml`` (127.0.0.1, free ports, data in the node's
   directory, seeds without a port, SimpleSnitch) and a logback config.
3. ``java ... org.apache.cassandra.service.CassandraDaemon`` with the JVM flags
   of Cassandra's own ``conf/jvm17-server.options`` (the module opens and
   exports it needs on Java 17), the jamm agent and a 256 MB heap. Ready in
   5-14 s; about 0.75 GB of memory. SIGTERM stops it.

:class:`CassandraCluster` runs several such nodes on 127.0.0.1, 127.0.0.2, ...
(``nox -s cassandra_cluster`` uses three).

Java 17 and Maven must be installed (``apt-get install -y openjdk-17-jre-headless
maven``); without them the tests skip with that hint, and fail under ``CI=true``.
Imports pytest: import this module only in tests.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from petiole.testing.servers import (
    ManagedServer,
    ServerProcess,
    free_port,
    in_ci,
    port_open,
    require_binary,
)

CASSANDRA_VERSION = "5.0.9"
INSTALL_HINT = "install Java 17 and Maven: apt-get install -y openjdk-17-jre-headless maven"
_MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"
_MAVEN_TIMEOUT_S = 600.0

_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.petiole.test</groupId>
  <artifactId>cassandra-server</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOGBACK = """\
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
"""

#: The JPMS and Netty lines of Cassandra 5.0's conf/jvm17-server.options (its
#: GC lines are left out: a 256 MB test heap needs no tuning).
JVM17_SERVER_OPTIONS = (
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
)  # fmt: skip


# -- the jars ---------------------------------------------------------------------


def cache_dir() -> Path:
    """Where the jars are kept between runs: ``$PETIOLE_TEST_CACHE`` or ``~/.cache/petiole``."""
    root = os.environ.get("PETIOLE_TEST_CACHE") or str(Path.home() / ".cache" / "petiole")
    return Path(root) / f"cassandra-{CASSANDRA_VERSION}"


def _unavailable(message: str) -> None:
    if in_ci():
        pytest.fail(f"{message}; CI must run these tests", pytrace=False)
    pytest.skip(message)


def require_java17() -> str:
    """The ``java`` executable, if it is Java 17 or newer; skip (fail under CI) otherwise."""
    java = require_binary("java", install_hint=INSTALL_HINT)
    out = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False, timeout=60
    ).stderr
    match = re.search(r'version "(\d+)', out)
    if match is None or int(match.group(1)) < 17:
        _unavailable(f"Cassandra {CASSANDRA_VERSION} needs Java 17, found: {out.strip()!r} "
                     f"({INSTALL_HINT})")  # fmt: skip
    return java


def ensure_jars() -> Path:
    """The folder of Cassandra's jars, fetching them with Maven on first use.

    A finished fetch is marked by a ``.complete`` file; a fetch that fails or is
    interrupted leaves nothing behind that a later run would trust. Concurrent
    test runs wait for each other on a lock file instead of fetching twice.
    """
    root = cache_dir()
    lib = root / "lib"
    if (lib / ".complete").is_file():
        return lib
    mvn = require_binary("mvn", install_hint=INSTALL_HINT)
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (lib / ".complete").is_file():
            return lib
        work = Path(tempfile.mkdtemp(prefix="fetch-", dir=root))
        try:
            (work / "pom.xml").write_text(_POM.format(version=CASSANDRA_VERSION))
            done = subprocess.run(
                [mvn, "-q", "-B", "dependency:copy-dependencies",
                 "-DoutputDirectory=lib", "-DincludeScope=runtime"],
                cwd=work, capture_output=True, text=True, check=False, timeout=_MAVEN_TIMEOUT_S,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(
                    f"mvn could not fetch cassandra-all {CASSANDRA_VERSION} "
                    f"(exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
                )
            (work / "lib" / ".complete").write_text(f"cassandra-all {CASSANDRA_VERSION}\n")
            shutil.rmtree(lib, ignore_errors=True)
            (work / "lib").rename(lib)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return lib


# -- one node -----------------------------------------------------------------------


def _with_parent_death_signal(argv: list[str]) -> list[str]:
    """``argv`` run so that the JVM gets SIGTERM if the test process dies first, and a
    crashed or killed test run leaves no 0.75 GB JVM behind (util-linux's setpriv;
    without it, the node is only stopped by a test run that ends normally)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


class CassandraNode(ManagedServer):
    """One Cassandra node as a child process; :meth:`restart` keeps its ports and data.

    ``address`` may be any loopback address (127.0.0.2, ...) so several nodes
    form a cluster on one machine: give them the same ``storage_port`` and
    ``seeds``. ``yaml`` adds or replaces cassandra.yaml settings, ``jvm_options``
    the JVM's (``-Dcassandra.ring_delay_ms=...``, say).
    """

    def __init__(
        self,
        directory: Path,
        *,
        address: str = "127.0.0.1",
        native_port: int | None = None,
        storage_port: int | None = None,
        seeds: str | None = None,
        cluster_name: str = "petiole-test",
        yaml: Mapping[str, str] | None = None,
        jvm_options: Sequence[str] = (),
        start_timeout_s: float = 90.0,
    ) -> None:
        self.java = require_java17()
        self.lib = ensure_jars()
        self.directory = directory
        self.address = address
        self.native_port = native_port or free_port()
        self.storage_port = storage_port or free_port()
        self.start_timeout_s = start_timeout_s
        self.log_path = directory / "cassandra.log"
        self.started_in_s: float | None = None
        conf = directory / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        data = directory / "data"
        settings = {
            "cluster_name": f"'{cluster_name}'",
            "num_tokens": "16",
            "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
            "listen_address": address,
            "rpc_address": address,
            "native_transport_port": str(self.native_port),
            "storage_port": str(self.storage_port),
            "endpoint_snitch": "SimpleSnitch",
            "commitlog_sync": "periodic",
            "commitlog_sync_period": "10000ms",
            "data_file_directories": f"['{data / 'data'}']",
            "commitlog_directory": str(data / "commitlog"),
            "saved_caches_directory": str(data / "saved_caches"),
            "hints_directory": str(data / "hints"),
            "cdc_raw_directory": str(data / "cdc_raw"),
            # With a 256 MB heap the server would derive a 6.4 MB cap on one CQL
            # message; lift it so that, as on a production node, the binding limit
            # on one write is max_mutation_size (half the 32 MiB commit log segment).
            "native_transport_max_message_size": "32MiB",
            "native_transport_max_request_data_in_flight": "64MiB",
            "native_transport_max_request_data_in_flight_per_ip": "64MiB",
            **(yaml or {}),
        }
        lines = [f"{key}: {value}" for key, value in settings.items()]
        lines += [
            "seed_provider:",
            "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider",
            "    parameters:",
            f'      - seeds: "{seeds or address}"',
        ]
        self.yaml_path = conf / "cassandra.yaml"
        self.yaml_path.write_text("\n".join(lines) + "\n")
        (conf / "logback.xml").write_text(_LOGBACK)
        jamm = sorted(self.lib.glob("jamm-*.jar"))
        self.argv = [
            self.java,
            "-Xms256m",
            "-Xmx256m",
            *(f"-javaagent:{path}" for path in jamm[:1]),
            *JVM17_SERVER_OPTIONS,
            f"-Dcassandra.config=file://{self.yaml_path}",
            f"-Dcassandra.storagedir={data}",
            "-Dcassandra-foreground=yes",
            "-Dcassandra.ring_delay_ms=1000",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            f"-Dlogback.configurationFile={conf / 'logback.xml'}",
            *jvm_options,  # after ours: the JVM keeps the last value of a -D property
            "-cp",
            f"{conf}:{self.lib}/*",
            _MAIN_CLASS,
        ]
        self.process = ServerProcess(
            f"Cassandra {self.host}",
            _with_parent_death_signal(self.argv),
            port=self.native_port,
            log_path=self.log_path,
            ready=self._answers_cql,
            start_timeout_s=start_timeout_s,
            cwd=directory,
            poll_interval_s=0.1,
            explain_exit=self._startup_error,
            log_lines=40,
        )

    @property
    def host(self) -> str:
        return f"{self.address}:{self.native_port}"

    def url(self, keyspace: str = "petiole_test", **query: object) -> str:
        """A ``cassandra://`` URL for this node, with options as query parameters."""
        params = "&".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in query.items()
        )
        return f"cassandra://{self.host}/{keyspace}" + (f"?{params}" if params else "")

    def start(self) -> CassandraNode:
        """Start the JVM and return once the node answers CQL queries."""
        started = time.monotonic()
        super().start()
        self.started_in_s = time.monotonic() - started
        return self

    def _answers_cql(self) -> bool:
        if not port_open(self.native_port, self.address):
            return False
        from petiole_cassandra._driver import probe  # the driver is slow to import

        return probe(self.address, self.native_port)

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM (Cassandra drains and flushes), then SIGKILL after ``grace_s``."""
        self.process.stop(grace_s)

    def kill(self) -> None:
        """SIGKILL at once (a crash). With ``commitlog_sync: periodic`` the last
        10 s of acknowledged writes may be lost; pass ``yaml={"commitlog_sync":
        "batch", ...}`` where a test needs none lost."""
        self.process.kill()

    def restart(self) -> None:
        """Stop (SIGTERM) and start again on the same ports and data."""
        self.stop()
        self.start()

    def _startup_error(self) -> str:
        """The reason Cassandra logged for failing to start (the log's tail is mostly
        the shutdown that follows it), or nothing."""
        marker = "Exception encountered during startup"
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").splitlines()
            for index, line in enumerate(lines[:-1]):
                if marker in line:
                    return f" ({lines[index + 1].strip()[:300]})"
        return ""

    def log_tail(self, lines: int = 40) -> str:
        # The node's first line lists its whole configuration: lines are cut short.
        return self.process.log_tail(lines)


# -- several nodes on one machine -----------------------------------------------------


class CassandraCluster:
    """``size`` nodes on one machine, as ccm runs them: node *i* listens on 127.0.0.*i*
    (Linux routes all of 127.0.0.0/8 to the loopback interface), every node on the
    same native and storage ports, 127.0.0.1 the seed.

    :meth:`start` starts the nodes one after another, each once the previous one
    answers CQL: Cassandra refuses to bootstrap two joining nodes at once.
    """

    #: A joining node checks that it has gossiped with a seed one ring delay after
    #: gossip starts; the single node's 1 s is one gossip round, too short to be sure
    #: (about one join in three failed with "Unable to contact any seeds").
    RING_DELAY_MS = 5000

    def __init__(
        self,
        directory: Path,
        *,
        size: int = 3,
        cluster_name: str = "petiole-cluster",
        yaml: Mapping[str, str] | None = None,
        start_timeout_s: float = 180.0,
    ) -> None:
        native_port, storage_port = free_port(), free_port()
        self.nodes = [
            CassandraNode(
                directory / f"node{index}",
                address=f"127.0.0.{index}",
                native_port=native_port,
                storage_port=storage_port,
                seeds="127.0.0.1",
                cluster_name=cluster_name,
                yaml=yaml,
                jvm_options=[f"-Dcassandra.ring_delay_ms={self.RING_DELAY_MS}"],
                start_timeout_s=start_timeout_s,
            )
            for index in range(1, size + 1)
        ]

    @property
    def hosts(self) -> str:
        """Every node's ``address:port``, comma-separated, as a URL's host part."""
        return ",".join(node.host for node in self.nodes)

    def url(self, keyspace: str = "petiole_test", **query: object) -> str:
        """A ``cassandra://`` URL naming every node, with options as query parameters."""
        return self.nodes[0].url(keyspace, **query).replace(self.nodes[0].host, self.hosts, 1)

    def start(self) -> CassandraCluster:
        """Start every node, one after another; on a failure, stop those started."""
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM every node still running, the last started first."""
        for node in reversed(self.nodes):
            node.stop()


# -- one node per test process ------------------------------------------------------

_shared: CassandraNode | None = None
_shared_lock = threading.Lock()


def shared_node() -> CassandraNode:
    """The node this test process shares between all its tests (started on first use,
    stopped at exit), so the plugin's tests and the end-to-end tests pay the start-up
    once. Tests must use their own keyspaces or unique keys; a test that restarts or
    kills a node starts its own :class:`CassandraNode`."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.process.running:
            directory = Path(tempfile.mkdtemp(prefix="petiole-cassandra-"))
            node = CassandraNode(directory)
            atexit.register(shutil.rmtree, directory, True)
            atexit.register(node.stop)
            _shared = node.start()
        return _shared


@contextlib.contextmanager
def own_node(directory: Path, *, yaml: Mapping[str, str] | None = None) -> Iterator[CassandraNode]:
    """A node of the caller's own (to kill or restart), stopped afterwards."""
    node = CassandraNode(directory, yaml=yaml)
    try:
        yield node.start()
    finally:
        node.stop()
