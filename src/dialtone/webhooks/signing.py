"""``X-Twilio-Signature`` of a webhook request (HOOK-10).

Pure.  The signature is the Base64 of HMAC-SHA1, keyed with the account's AuthToken, over the
exact absolute URL requested (without the fragment) followed, for POST, by each parameter
name immediately followed by its value, names in ascending code-point order and the values of a
repeated name sorted too.  For GET the URL already holds the parameters and nothing is
appended: pass ``params=None`` (or an empty list).

Repeated *identical* ``name=value`` pairs count once: the official twilio-python
``RequestValidator`` builds the string from ``sorted(set(values))``, and HOOK-10 requires that
validator to accept every request dialtone sends.

Twilio's documented example::

    >>> signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
    ...           [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"),
    ...            ("Digits", "1234"), ("From", "+12349013030"), ("To", "+18005551212")])
    '0/KCTR6DLpKmkAf8muzZqo1nDgQ='
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

__all__ = ["SIGNATURE_HEADER", "requested_url", "signature", "signed_string", "validate"]

SIGNATURE_HEADER = "X-Twilio-Signature"
"""The request header that carries the signature."""

_DEFAULT_PORTS = {"http": 80, "https": 443}

SignedParams = Iterable[tuple[str, str]] | Mapping[str, str] | None
"""Form fields of a POST as pairs (names may repeat) or a mapping; ``None`` for GET."""


def requested_url(scheme: str, host: str, port: int | None, target: str) -> str:
    """The absolute URL of a request as sent: ``scheme://host[:port]`` and the request target.

    ``host`` is the ASCII (IDNA) host, bracketed here when it is an IPv6 address; ``port`` is
    kept whenever the URL was written with one, even the default (HOOK-10 "port as written");
    ``target`` is the percent-encoded path and query as they go on the request line.
    """
    host = f"[{host}]" if ":" in host else host
    netloc = host if port is None else f"{host}:{port}"
    return f"{scheme.lower()}://{netloc.lower()}{target}"


def signed_string(url: str, params: SignedParams) -> str:
    """Return the text that is signed: ``url`` then each name+value in HOOK-10 order."""
    if not params:
        return url
    pairs = params.items() if isinstance(params, Mapping) else params
    values: dict[str, set[str]] = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    parts = [url]
    for name in sorted(values):
        parts.extend(name + value for value in sorted(values[name]))
    return "".join(parts)


def signature(auth_token: str, url: str, params: SignedParams) -> str:
    """Return the ``X-Twilio-Signature`` value for a request to ``url`` with ``params``.

    ``url`` must be the absolute URL exactly as requested, without its fragment; for GET it
    already contains the parameters and ``params`` is ``None``.
    """
    digest = hmac.new(
        auth_token.encode("utf-8"), signed_string(url, params).encode("utf-8"), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """``url`` as given, plus with its default port added or removed (as Twilio's validator)."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or not parts.hostname:
        return [url]
    try:
        port = parts.port
    except ValueError:
        return [url]
    host = parts.netloc.rpartition("@")[2]
    userinfo = parts.netloc[: len(parts.netloc) - len(host)]
    bare = host.rsplit(":", 1)[0] if port is not None else host
    if port is None:
        other = f"{userinfo}{bare}:{default}"
    elif port == default:
        other = f"{userinfo}{bare}"
    else:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=other))]


def validate(auth_token: str, url: str, params: SignedParams, signature_value: str) -> bool:
    """Return True when ``signature_value`` signs a request to ``url`` with ``params``.

    Like the official validator, a URL that differs only by an explicit default port
    (``:80``/``:443``) is accepted either way, since a server sees the Host header, which may
    omit it.  The comparison takes constant time.
    """
    given = signature_value.encode("utf-8")
    return any(
        hmac.compare_digest(signature(auth_token, variant, params).encode("ascii"), given)
        for variant in _port_variants(url)
    )
