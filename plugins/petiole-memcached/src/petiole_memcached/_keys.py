"""Every memcached key the plugin uses, built in one place.

A key is ``<prefix>:<kind>:<name>``: the prefix is the ``key_prefix`` option
(letters, digits, ``_.-``; default ``petiole``) and a kind is one short word.
memcached keys are at most 250 bytes of printable ASCII without spaces, so a
name that would make the key longer, or that holds a space, a control
character or anything outside ASCII, is replaced by its SHA-1:
``<prefix>:<kind>#<40 hex digits>``. The ``#`` (never in a prefix or a kind)
keeps hashed and plain keys apart, so two names never share a key. Hashed keys
work the same; they are only harder to read in ``memcached-tool`` dumps.

Results::

    <p>:r:<task id>               the encoded ResultRecord (see petiole.record_codec)
    <p>:set:<key>                 a set's state: generation, size, in-flight members (_sets.py)
    <p>:sm#<sha1>                 one member of one generation of a set (always hashed)
    <p>:n:<key>                   a counter (decimal, offset by 2**62 so it may go negative)
    <p>:claim:<key>               the owner of a claim, or the value of a mark
    <p>:lease:<name>              the holder of a lease (empty = released; results.py)
"""

from __future__ import annotations

import hashlib
import re

#: memcached's longest key.
MAX_KEY_BYTES = 250
_SAFE = re.compile(r"[\x21-\x7e]*")


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def result(self, task_id: str) -> str:
        return self._key("r", task_id)

    def set(self, key: str) -> str:
        return self._key("set", key)

    def set_member(self, key: str, generation: str, member: str) -> str:
        digest = hashlib.sha1(
            "\0".join((key, generation, member)).encode(), usedforsecurity=False
        ).hexdigest()
        return f"{self.prefix}:sm#{digest}"

    def counter(self, key: str) -> str:
        return self._key("n", key)

    def claim(self, key: str) -> str:
        return self._key("claim", key)

    def lease(self, name: str) -> str:
        return self._key("lease", name)

    def _key(self, kind: str, name: str) -> str:
        key = f"{self.prefix}:{kind}:{name}"
        if len(key) <= MAX_KEY_BYTES and _SAFE.fullmatch(key):
            return key
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()
        return f"{self.prefix}:{kind}#{digest}"
