"""Running the worker for an init system: ``--pidfile``, ``--logfile``, ``--detach``.

:func:`detach` makes this process a daemon the classic way: fork (the original
process waits), ``setsid`` (no controlling terminal), fork again (never to
reacquire one), ``chdir``, ``umask``, standard input from ``/dev/null`` and
standard output and error to the logfile (else ``/dev/null``). The daemon
writes its pidfile at once and tells the original process, through a pipe, when
the worker is ready — or why it failed — so the command's exit status says
whether the worker started, and an init system's ``Type=forking`` finds the
pidfile when the command returns.

Call it before anything starts a thread (forking a threaded process can leave
the child holding a lock nobody will release): the worker command detaches
first, then loads the app.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import NoReturn

from petiole.errors import ConfigError

DEFAULT_PIDFILE = "petiole-worker.pid"
DEFAULT_UMASK = 0o022
_READY = b"\0ready"


class PidfileInUse(ConfigError):
    """The pidfile names a process that is alive: another worker, most likely."""


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (dead, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: the signal test is all there is
    return state != b"Z"


class Pidfile:
    """A file holding the worker's process id while it runs.

    :meth:`acquire` refuses (:class:`PidfileInUse`) when the file names a live
    process, replaces a stale one, and creates the file exclusively, so two
    workers started at once cannot both take it. :meth:`release` removes it only
    if it still holds this process's id.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self._pid: int | None = None

    def holder(self) -> int | None:
        """The live process the file names, if any."""
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read the pidfile {self.path}: {exc}") from exc
        pid = int(text) if text.isdigit() else None
        return pid if pid is not None and pid != os.getpid() and alive(pid) else None

    def check(self) -> None:
        """Raise :class:`PidfileInUse` if the file names a live process."""
        pid = self.holder()
        if pid is not None:
            raise PidfileInUse(
                f"the pidfile {self.path} names process {pid}, which is running: another "
                "worker has it. Stop that worker, or give this one its own --pidfile "
                "(delete the file only if that process is not a worker)"
            )

    def acquire(self) -> None:
        """Write this process's id to the file."""
        for _ in range(2):
            self.check()
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                # Stale (its process is gone), unless a rival just wrote it: check again.
                with contextlib.suppress(FileNotFoundError):
                    if self.holder() is None:
                        self.path.unlink()
                continue
            except OSError as exc:
                raise ConfigError(f"cannot write the pidfile {self.path}: {exc}") from exc
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            self._pid = os.getpid()
            return
        self.check()
        raise ConfigError(f"cannot take the pidfile {self.path}: another process keeps writing it")

    def release(self) -> None:
        """Remove the file if this process wrote it and it still names this process."""
        if self._pid is None or self._pid != os.getpid():
            return
        with contextlib.suppress(OSError):
            if self.path.read_text().strip() == str(self._pid):
                self.path.unlink()
        self._pid = None


def redirect_output(logfile: str | os.PathLike[str] | None) -> None:
    """Point this process's standard output and error (file descriptors 1 and 2,
    which pool children inherit) at ``logfile``, appended to, or at ``/dev/null``."""
    target = os.devnull if logfile is None else os.fspath(logfile)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot open the logfile {target}: {exc}") from exc
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


class Detached:
    """In the daemon: how it tells the waiting original process how starting went."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def ready(self) -> None:
        """The worker is consuming: the original process exits with status 0."""
        self._say(_READY)

    def failed(self, reason: str) -> None:
        """The worker cannot start: the original process prints ``reason``, exits 1."""
        self._say(reason.encode(errors="replace"))

    def forget(self) -> None:
        """In a process forked from the daemon (a worker process under a supervisor):
        let go of the pipe without a word, so that the original process's wait ends
        with the daemon's own message, not with the last child's exit."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _say(self, message: bytes) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._fd, message)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None


def detach(
    *,
    pidfile: Pidfile,
    logfile: str | os.PathLike[str] | None,
    workdir: str | os.PathLike[str],
    umask: int,
    announce: str,
) -> Detached:
    """Become a daemon (see the module docstring); returns in the daemon only.

    The original process prints ``announce`` once the daemon has its pidfile,
    then waits for :meth:`Detached.ready` (exit 0) or :meth:`Detached.failed`,
    or for the daemon to exit without either (exit 1, pointing at the log).
    """
    if not hasattr(os, "fork"):
        raise ConfigError(
            "--detach needs fork(), which this system lacks: run the worker in the "
            "foreground under a service manager instead"
        )
    pidfile.check()  # here, where the person starting it sees the error
    if logfile is not None:
        logfile = Path(logfile).absolute()  # before the daemon changes directory
        try:
            logfile.open("a").close()
        except OSError as exc:
            raise ConfigError(f"cannot open the logfile {logfile}: {exc}") from exc
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    session_leader = os.fork()
    if session_leader > 0:
        os.close(write_fd)
        os.waitpid(session_leader, 0)  # it exits at once, leaving the daemon
        _wait_for_daemon(read_fd, announce, logfile)
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)  # the session leader goes: the daemon can never get a terminal back
    os.chdir(workdir)
    os.umask(umask)
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.close(stdin)
    redirect_output(logfile)
    detached = Detached(write_fd)
    try:
        pidfile.acquire()
    except ConfigError as exc:
        detached.failed(str(exc))
        os._exit(1)
    os.write(write_fd, f"{os.getpid()}\n".encode())
    return detached


def _wait_for_daemon(
    read_fd: int, announce: str, logfile: str | os.PathLike[str] | None
) -> NoReturn:
    """In the original process: relay what the daemon says, then exit."""
    received = b""
    announced = False
    while True:
        try:
            chunk = os.read(read_fd, 4096)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            chunk = b""
        received += chunk
        if not announced and b"\n" in received:
            pid, _, received = received.partition(b"\n")
            print(announce.format(pid=pid.decode()), file=sys.stderr, flush=True)
            announced = True
        if not chunk:
            break
    if announced and received == _READY:
        os._exit(0)
    where = f"; see {Path(logfile).absolute()}" if logfile is not None else ""
    message = received.decode(errors="replace") or f"the worker exited before it was ready{where}"
    print(f"Error: {message}", file=sys.stderr, flush=True)
    os._exit(1)
