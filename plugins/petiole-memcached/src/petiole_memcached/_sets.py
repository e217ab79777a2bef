"""Atomic sets on memcached, which has no set type: how chords count their members.

A set ``K`` is one *state* value plus one key per member::

    <p>:set:K        b"\\x01" + JSON [generation, size, [in-flight member digests]]
    <p>:sm#<sha1>    per (K, generation, member): b"p" (pending) or b"c" (counted)

``add(K, m)`` returns the size after the add, counting ``m`` once however many
times it is added, and exactly one caller gets each size (so exactly one sees
the set complete):

1. ``gets`` the state (``add`` it first, with a new random generation, if
   missing) and keep its cas token.
2. ``add`` the member key with ``p``. memcached's ``add`` is atomic: one caller
   of all those adding ``m`` creates it. A caller that finds it already there
   reads it (after the state, which matters below); ``c`` means counted: done.
3. Count with ``cas`` on the state: ``size + 1``, and the member's digest added
   to *in flight*. If another caller changed the state since our ``gets``, the
   ``cas`` fails and we read again — state first, then the member key — and
   retry: so sizes are handed out one at a time. A digest already in flight
   means an earlier call counted ``m`` already: don't count it again.
4. ``set`` the member key to ``c``, then remove the digest from in flight
   (``cas`` again), so the state stays as small as the number of members being
   added at that moment, not the size of the set.

**Crash windows.** A caller may die between any two steps (a worker SIGKILLed
mid-chord); the member is then added again by its redelivered task:

* after 2, before 3: the member key says ``p`` and no digest is in flight, so
  the redelivery counts it, once.
* after 3, before 4: ``p`` and the digest in flight: already counted; the
  redelivery only finishes step 4 and returns the current size.
* after 4's ``set``, before the removal: ``c``: counted; the redelivery also
  removes the leftover digest.

Two deliveries of one member racing each other are safe for the same reason a
digest is only removed *after* its key says ``c``: a caller that reads the
state without the digest and then the member key as ``p`` knows nobody counted
``m`` before its read, and its ``cas`` succeeds only if nobody did since.

**Expiry.** Every add renews the state's expiry (the set lives ``ttl_s`` past
its last add); a member key lives ``ttl_s`` past its own add. A member added
again more than ``ttl_s`` after its first add, into a set kept alive by other
adds, would be counted again — by then its result has expired too, so a chord
that slow has failed anyway. ``delete_keys`` deletes the state only: the next
add starts a new generation, whose member keys are new, and the old member
keys expire on their own (with ``ttl_s=None``, memcached's LRU evicts them
when it needs the room). If memcached evicts or loses a state, the set starts
over from 0 — memcached is a cache (see the README).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace

from petiole.errors import ResultBackendError
from petiole_memcached._keys import Keys
from petiole_memcached._servers import Servers, expiry

_FORMAT = b"\x01"
PENDING = b"p"
COUNTED = b"c"
#: Tries at removing a digest from in flight before leaving it (it only costs bytes).
_TIDY_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class SetState:
    generation: str
    size: int
    in_flight: tuple[str, ...]


class Sets:
    """``add`` for sets kept under ``keys`` on ``servers`` (see the module docstring)."""

    def __init__(self, servers: Servers, keys: Keys) -> None:
        self.servers = servers
        self.keys = keys

    def add(self, key: str, member: str, *, ttl_s: float | None) -> int:
        exptime = expiry(ttl_s)
        what = f"add to the set {key!r}"
        state_key = self.keys.set(key)
        digest = hashlib.blake2b(member.encode("utf-8", "surrogatepass"), digest_size=16)
        while True:
            state, token = self._read_or_create(key, state_key, exptime, what)
            member_key = self.keys.set_member(key, state.generation, member)
            if self.servers.add(member_key, PENDING, exptime, what):
                mark = PENDING
            else:
                mark = self.servers.get(member_key, what) or PENDING
            size = self._count(
                key, state_key, member_key, digest.hexdigest(), state, token, mark, exptime
            )
            if size is not None:
                return size
            # The state vanished (expired, deleted, evicted) meanwhile: join its next generation.

    def _count(
        self,
        key: str,
        state_key: str,
        member_key: str,
        digest: str,
        state: SetState,
        token: bytes,
        mark: bytes,
        exptime: int,
    ) -> int | None:
        """Steps 3 and 4; ``None`` if the set's generation ended meanwhile."""
        what = f"add to the set {key!r}"
        while True:
            if mark == COUNTED:
                if digest in state.in_flight:
                    self._tidy(key, state_key, state.generation, digest, exptime)
                else:
                    self.servers.touch(state_key, exptime, what)
                return state.size
            if digest in state.in_flight:
                size = state.size
                break
            counted = replace(state, size=state.size + 1, in_flight=(*state.in_flight, digest))
            if self.servers.cas(state_key, _encode(counted), token, exptime, what):
                size = counted.size
                break
            # Someone changed the state since we read it: read it again, then the mark.
            value, new_token = self.servers.gets(state_key, what)
            if value is None or new_token is None:
                return None
            state, token = _decode(key, value), new_token
            if state.generation != counted.generation:
                return None
            mark = self.servers.get(member_key, what) or PENDING
        self.servers.set(member_key, COUNTED, exptime, what)
        self._tidy(key, state_key, state.generation, digest, exptime)
        return size

    def _read_or_create(
        self, key: str, state_key: str, exptime: int, what: str
    ) -> tuple[SetState, bytes]:
        while True:
            value, token = self.servers.gets(state_key, what)
            if value is not None and token is not None:
                return _decode(key, value), token
            # Whoever's add wins, the next gets reads the one state everybody shares.
            fresh = SetState(generation=os.urandom(8).hex(), size=0, in_flight=())
            self.servers.add(state_key, _encode(fresh), exptime, what)

    def _tidy(self, key: str, state_key: str, generation: str, digest: str, exptime: int) -> None:
        """Remove a counted member's digest from in flight (it is marked counted now)."""
        what = f"add to the set {key!r}"
        for _ in range(_TIDY_ATTEMPTS):
            value, token = self.servers.gets(state_key, what)
            if value is None or token is None:
                return
            state = _decode(key, value)
            if state.generation != generation or digest not in state.in_flight:
                return
            tidied = replace(state, in_flight=tuple(d for d in state.in_flight if d != digest))
            if self.servers.cas(state_key, _encode(tidied), token, exptime, what):
                return


def _encode(state: SetState) -> bytes:
    body = json.dumps([state.generation, state.size, list(state.in_flight)], separators=(",", ":"))
    return _FORMAT + body.encode()


def _decode(key: str, value: bytes) -> SetState:
    try:
        if value[:1] != _FORMAT:
            raise ValueError(f"unknown format byte {value[:1]!r}")
        generation, size, in_flight = json.loads(value[1:])
        return SetState(str(generation), int(size), tuple(str(d) for d in in_flight))
    except (ValueError, TypeError) as exc:
        raise ResultBackendError(
            f"the stored state of the set {key!r} is not a petiole-memcached set: {exc}"
        ) from exc
