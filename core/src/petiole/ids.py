"""Task ids, random bytes and this process's pid, each without a system call.

``str(uuid.uuid4())`` reads 16 bytes from the kernel per id. The read itself is
short, but it releases the GIL, and in a producer whose transport has an I/O
thread (every push broker's client does) each release hands the interpreter to
that thread until its next blocking call: profiled enqueueing 40,000 tasks on
RabbitMQ, uuid4 was 12 % of the producer's time. Here each thread reads the
kernel's randomness for 256 ids at a time and slices it, so an id costs no
system call; the bytes are the same ``os.urandom`` bytes, as unpredictable.

The same buffer serves :func:`random_hex` (a publish's nonce). :func:`current_pid`
is ``os.getpid()`` read once per process: glibc no longer caches the pid, so
each ``os.getpid()`` is a system call, and a send asked for it twice.

A forked child must not hand out the ids its parent's buffer still holds, nor
its parent's pid: the buffer is dropped and the pid read again in the child
(``os.register_at_fork``; a fork made by C code that skips Python's fork hooks
would miss both, as it would miss the ``random`` module's reseeding).
"""

from __future__ import annotations

import os
import threading

_ID_BYTES = 16
_IDS_PER_READ = 256


class _Randomness(threading.local):
    buffer: bytes = b""
    offset: int = 0


_randomness = _Randomness()


_pid = os.getpid()


def _forget_in_child() -> None:
    global _pid
    _pid = os.getpid()
    # Only the forking thread survives a fork; its buffer is the one to drop.
    _randomness.buffer = b""
    _randomness.offset = 0


os.register_at_fork(after_in_child=_forget_in_child)


def current_pid() -> int:
    """This process's id (``os.getpid()``), without a system call."""
    return _pid


def random_bytes(count: int) -> bytes:
    """``count`` bytes of the kernel's randomness, read ahead 4 kB at a time."""
    source = _randomness
    offset = source.offset
    end = offset + count
    if end > len(source.buffer):
        source.buffer = os.urandom(max(count, _ID_BYTES * _IDS_PER_READ))
        offset, end = 0, count
    source.offset = end
    return source.buffer[offset:end]


def random_hex(count: int) -> str:
    """``count`` random bytes as ``2 * count`` hexadecimal digits (see :func:`random_bytes`)."""
    return random_bytes(count).hex()


def new_id() -> str:
    """A random UUID (version 4, RFC 9562) as its usual 36-character string."""
    raw = bytearray(random_bytes(_ID_BYTES))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC's variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
