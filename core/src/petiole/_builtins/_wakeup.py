"""Waking waiters in *other* processes that share a SQLite file: doorbells.

Beside the database ``petiole.db`` sits a directory ``petiole.db-wake``. A
process whose threads wait on a channel (``messages``, ``results``,
``broadcasts``) owns one Unix datagram socket for that channel, bound under a
hidden name (``.messages.<kernel>.<pid>.<token>``), and a thread that turns each
datagram into a :class:`~petiole._builtins._sqlite.Notifier` wake-up. While at
least one of its threads waits, the socket is also *armed*: hard-linked under
the visible name (``messages.<kernel>.<pid>.<token>``). After a commit, a writer
lists the directory and sends one byte to every armed socket of the channel:
so only waiting processes are woken, never one busy working.

Nothing is lost between "look at the database" and "wait": a waiter arms
before its last look, and reads the notifier's generation before that look; a
writer rings after its commit. Either the commit came before the look (seen),
or the writer's listing came after the arming (it rings, the generation moves
on, and the wait returns at once).

Socket addresses hold about 107 bytes: where the directory's path is longer,
sockets are addressed through ``/proc/self/fd/N`` (an open descriptor of the
directory, on Linux); where that is impossible too, waiters poll.

Crash safety: a process killed with SIGKILL leaves its socket files behind. A
writer whose datagram is refused (no process holds that socket any more)
deletes the armed name; the hidden ones of dead processes are deleted by the
next process that opens a doorbell on that file. A full socket buffer means a
wake-up is already pending there, so the writer skips it. Every failure here
only makes a waiter fall back to its poll, never breaks a write.

The ``<kernel>`` part identifies this machine's running kernel (Linux's boot
id, else the host name): writers ring only sockets of their own kernel, and
clean up only those, so a file shared over a network file system by several
machines works: each machine's writers wake that machine's waiters, and
waiters see the others' writes at their next poll.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

WAKE_SUFFIX = "-wake"
# sockaddr_un's sun_path holds 108 bytes with the terminating NUL.
_MAX_SOCKET_PATH = 107
# A datagram carries no data: its arrival is the message.
_RING = b"\0"
# Unmounted, or mounted from another machine: a writer there cannot ring us.
NETWORK_FILE_SYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "ocfs2",
        "gfs2",
        "fuse.sshfs",
        "fuse.glusterfs",
        "fuse.cephfs",
    }
)


def kernel_id() -> str:
    """A short name for the running kernel: the same for every process (and
    container) on this machine since boot, different on another machine."""
    try:
        seed = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        seed = socket.gethostname()
    return hashlib.sha256(seed.encode()).hexdigest()[:8]


def file_system_type(path: Path) -> str | None:
    """The type of the file system holding ``path`` (Linux's mount table), or None."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not rest:
            continue
        mount_point = parts[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) > best[0]):
            best = (len(mount_point), rest.split()[0])
    return None if best is None else best[1]


class WakeDirectory:
    """The doorbells of one database file, as this process sees them.

    :meth:`ring` wakes the waiting processes of a channel; :meth:`doorbell`
    gives this process's own doorbell of a channel (created on first use).
    ``available`` is False where doorbells cannot work (no Unix sockets, the
    directory cannot be created, its path is too long for a socket address);
    then nothing rings and waiters poll. ``complete`` is True when every writer
    can be assumed to ring (a local file system): waiters may then poll rarely.
    """

    def __init__(self, database: Path, notify: Callable[[str], None]) -> None:
        self.path = database.with_name(database.name + WAKE_SUFFIX)
        self._notify = notify
        self._kernel = kernel_id()
        self._doorbells: dict[str, Doorbell] = {}
        self._lock = threading.Lock()
        self._sender: socket.socket | None = None
        # What socket paths start with: the directory, or where its path is too
        # long for a socket address, /proc/self/fd/N naming it by an open descriptor.
        self._base = str(self.path)
        self._dir_fd: int | None = None
        self.available = False
        self.complete = False
        self._prepare()

    def _prepare(self) -> None:
        if not hasattr(socket, "AF_UNIX"):
            return
        try:
            self.path.mkdir(exist_ok=True)
            if not self._fits(self._base):
                self._dir_fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
                self._base = f"/proc/self/fd/{self._dir_fd}"
                if not (self._fits(self._base) and os.path.isdir(self._base)):
                    logger.info(
                        "%s: the path is too long for a Unix socket address; waiters in "
                        "other processes poll instead of being woken",
                        self.path,
                    )
                    return
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError as exc:
            logger.info("%s unusable (%s); waiters in other processes poll", self.path, exc)
            return
        sender.setblocking(False)
        self._sender = sender
        self.available = True
        fs_type = file_system_type(self.path)
        self.complete = fs_type not in NETWORK_FILE_SYSTEMS
        if not self.complete:
            logger.info(
                "%s is on a %s file system: writers on other machines cannot ring, so "
                "waiters keep polling from 5 ms up to poll_interval_ms",
                self.path,
                fs_type,
            )
        self._remove_dead_sockets()

    def _fits(self, base: str) -> bool:
        longest = f"{base}/.broadcasts.{self._kernel}.{2**32}.{'0' * 12}"
        return len(os.fsencode(longest)) <= _MAX_SOCKET_PATH

    def ring(self, channel: str) -> None:
        """Wake every other process of this machine waiting on ``channel``.
        Call it after the commit. Never raises: a waiter not woken polls."""
        sender = self._sender
        if sender is None:
            return
        prefix = f"{channel}.{self._kernel}."
        try:
            names = os.listdir(self.path)
        except OSError:
            return
        own = self._doorbells.get(channel)
        for name in names:
            if not name.startswith(prefix) or (own is not None and name == own.name):
                continue
            path = f"{self._base}/{name}"
            try:
                sender.sendto(_RING, path)
            except (BlockingIOError, FileNotFoundError):
                pass  # a wake-up already waits there, or it just disarmed
            except ConnectionRefusedError:
                # Nobody holds that socket: its process died while waiting.
                with contextlib.suppress(OSError):
                    os.unlink(path)
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    logger.debug("cannot ring %s: %s", path, exc)

    def doorbell(self, channel: str) -> Doorbell | None:
        """This process's doorbell of ``channel``; None if doorbells are unavailable."""
        if not self.available:
            return None
        with self._lock:
            doorbell = self._doorbells.get(channel)
            if doorbell is None:
                try:
                    doorbell = Doorbell(self._base, channel, self._kernel, self._notify)
                except OSError as exc:
                    logger.info("cannot open a doorbell in %s (%s); polling", self.path, exc)
                    self.available = False
                    return None
                self._doorbells[channel] = doorbell
            return doorbell

    def close(self) -> None:
        """Remove this process's sockets and stop their threads."""
        with self._lock:
            doorbells = list(self._doorbells.values())
            self._doorbells.clear()
        for doorbell in doorbells:
            doorbell.close()
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def forget_after_fork(self) -> None:
        """In a forked child: close the parent's sockets without touching its files."""
        for doorbell in self._doorbells.values():
            doorbell.socket.close()
        if self._sender is not None:
            self._sender.close()
        if self._dir_fd is not None:
            os.close(self._dir_fd)

    def _remove_dead_sockets(self) -> None:
        """Delete the socket files of this machine's processes that died (SIGKILL)."""
        assert self._sender is not None
        marker = f".{self._kernel}."
        try:
            names = os.listdir(self.path)
        except OSError:
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            for name in names:
                if marker not in name:
                    continue
                path = f"{self._base}/{name}"
                try:
                    probe.connect(path)
                except ConnectionRefusedError:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                except OSError:
                    pass
        finally:
            probe.close()


class Doorbell:
    """One process's socket for one channel, and the thread that listens on it.

    :meth:`armed` is the block during which writers of other processes ring it;
    any number of threads may be inside at once.
    """

    def __init__(
        self, directory: str, channel: str, kernel: str, notify: Callable[[str], None]
    ) -> None:
        self.name = f"{channel}.{kernel}.{os.getpid()}.{secrets.token_hex(6)}"
        self._home = f"{directory}/.{self.name}"
        self._visible = f"{directory}/{self.name}"
        self._channel = channel
        self._notify = notify
        self._armed = 0
        self._lock = threading.Lock()
        self._closed = False
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.socket.bind(self._home)
        except OSError:
            self.socket.close()
            raise
        self._thread = threading.Thread(
            target=self._listen, name=f"petiole-sqlite-doorbell-{channel}", daemon=True
        )
        self._thread.start()

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """Writers ring this doorbell from the start of the block to its end."""
        with self._lock:
            if self._armed == 0 and not self._closed:
                with contextlib.suppress(FileExistsError):
                    os.link(self._home, self._visible)
            self._armed += 1
        try:
            yield
        finally:
            with self._lock:
                self._armed -= 1
                if self._armed == 0:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._visible)

    def _listen(self) -> None:
        sock = self.socket
        while True:
            try:
                sock.recv(16)
                # Several rings while this thread was away make one wake-up.
                while True:
                    sock.recv(16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
            except OSError:
                return  # closed
            if self._closed:
                return
            self._notify(self._channel)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # A datagram of our own wakes the listener, which sees _closed and ends
        # (closing a socket does not wake a thread blocked reading it).
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as waker,
        ):
            waker.sendto(_RING, self._home)
        self._thread.join(timeout=1.0)
        for path in (self._visible, self._home):
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.socket.close()
