"""URL helpers shared by the CLI, the worker and plugins, and the one place that
decides what of a URL or a setting may be shown in a log line or an error.

The masking rule (docs/configuration.md, "Credentials in logs and errors"):

* **A URL's password** — everything between the first ``:`` of the userinfo
  and the *last* ``@`` of the URL becomes ``***``, so a password with ``/``,
  ``#``, ``?`` or ``@`` left unencoded is hidden whole. The user name stays.
  When an ``@`` also appears in the path or query, more than the password is
  hidden: masking too much is safe, too little is not.
* **A secret-named parameter or option** (:func:`is_secret_name`) — its value
  becomes ``***``, in a URL's query and in "bad value" errors.
* **A URL inside another value** (``endpoint_url=http://u:p@h``) or inside free
  text — masked by the same two rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote_plus

MASK = "***"
#: Added to an error about a URL a parser cut in the wrong place.
ENCODE_HINT = (
    "a '/', '?', '#' or '@' in a user name or password must be percent-encoded (%2F, %3F, %23, %40)"
)

# A name holds a secret when it contains one of these (compared without case,
# "_", "-" or "."; pymongo's lower-cased option names are run together) ...
_SECRET_PARTS = (
    "password", "passwd", "passphrase", "pwd", "secret", "token", "credential", "auth", "key",
)  # fmt: skip
_SECRET_NAMES = frozenset({"pass", "pw"})
# ... unless it ends in one of these: then it names where a secret is, or a
# property of one, and its value is a path or a name (ssl_keyfile, key_prefix,
# authSource, tlsCertificateKeyFile, password_file).
_REFERENCE_ENDINGS = ("file", "path", "dir", "prefix", "suffix", "source", "mechanism")

_FOLD = re.compile(r"[^a-z0-9]")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")
_PAIR_IN_TEXT = re.compile(
    r"(?P<name>[A-Za-z_][\w.-]*)(?P<sep>[\"']?\s*[:=]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&}\]\"']*)"
)


def is_secret_name(name: str) -> bool:
    """Whether a parameter, option or setting called ``name`` holds a secret.

    ``password``, ``sasl_password``, ``aws_secret_access_key``,
    ``aws_access_key_id``, ``token``, ``authMechanismProperties``,
    ``tlsCertificateKeyFilePassword`` do; ``ssl_keyfile``, ``key_prefix``,
    ``authSource``, ``tlsCertificateKeyFile``, ``secure_connect_bundle`` do not.
    """
    folded = _FOLD.sub("", name.lower())
    if folded in _SECRET_NAMES:
        return True
    return any(part in folded for part in _SECRET_PARTS) and not folded.endswith(_REFERENCE_ENDINGS)


def mask_url(url: str) -> str:
    """``url`` with its password and secret-named query values replaced by ``***``.

    ``redis://:p/w#d@host/0?password=x`` → ``redis://:***@host/0?password=***``.
    Multi-host URLs (``mongodb://u:p@h1:1,h2:2/``), URLs ``urllib`` refuses and
    URLs missing their scheme (``//u:p@host``, ``u:p@host``) are masked too.
    Never raises.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        lead = "//" if url.startswith("//") else ""
        return lead + _mask_query(_mask_userinfo(url[len(lead) :]))
    return f"{scheme}://{_mask_query(_mask_userinfo(rest))}"


# The name the CLI, the worker and plugins have always called.
mask_password = mask_url


def quote_part(part: str, masked: str) -> str:
    """``part`` of a URL quoted for an error (``'h:99999'``) if ``masked`` (the
    URL through :func:`mask_url`) shows it; else ``'***'`` and :data:`ENCODE_HINT`.

    A parser that ends the host at a ``/``, ``?`` or ``#`` of an unencoded
    password takes the rest of the password for a host, port or path, which an
    error must not quote back.
    """
    return repr(part) if part in masked else f"{MASK!r} ({ENCODE_HINT})"


def mask_text(text: str) -> str:
    """Free text (an unparsed setting, a JSON table) with every URL in it masked
    by :func:`mask_url` and every ``name=value`` or ``"name": "value"`` whose
    name :func:`is_secret_name` has its value replaced by ``***``."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group()), text)
    return _PAIR_IN_TEXT.sub(_mask_pair, text)


def mask_value(name: str, value: Any) -> Any:
    """``value`` of the setting or option ``name``, fit to show in an error:
    ``***`` if the name holds a secret, else with secrets inside masked (URLs
    and pairs in strings, secret-named entries of tables, items of lists)."""
    if is_secret_name(name):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {key: mask_value(str(key), item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask_value(name, item) for item in value)
    return value


def _mask_userinfo(rest: str) -> str:
    """``rest`` (what follows ``scheme://``) with the password of its userinfo masked.

    The userinfo ends at the last ``@``: a password may hold any character
    unencoded, a host never holds ``@``. It has a password when a ``:`` comes
    before any ``/``, ``?`` or ``#`` (else the ``@`` is in a path, as in
    ``sqlite:////tmp/a@b.db``).
    """
    at = rest.rfind("@")
    if at < 0:
        return rest
    user, colon, _ = rest[:at].partition(":")
    if not colon or any(ch in user for ch in "/?#"):
        return rest
    return f"{user}:{MASK}@{rest[at + 1 :]}"


def _mask_query(rest: str) -> str:
    before, question, after = rest.partition("?")
    if not question:
        return rest
    query, hash_, fragment = after.partition("#")
    items = [_mask_query_item(item) for item in query.split("&")]
    return f"{before}?{'&'.join(items)}{hash_}{fragment}"


def _mask_query_item(item: str) -> str:
    name, eq, value = item.partition("=")
    if not eq:
        return item
    if is_secret_name(unquote_plus(name)):
        return f"{name}={MASK}"
    decoded = unquote_plus(value)
    if "://" in decoded:
        masked = mask_url(decoded)
        if masked != decoded:
            return f"{name}={quote(masked, safe=':/@*,[]')}"
    return item


def _mask_pair(match: re.Match[str]) -> str:
    if not is_secret_name(match.group("name")):
        return match.group()
    value = match.group("value")
    quote_char = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('name')}{match.group('sep')}{quote_char}{MASK}{quote_char}"
