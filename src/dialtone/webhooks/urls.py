"""Webhook URLs: resolution and checks, fragment overrides, the GET URL and POST body.

Pure.  HOOK-2: only absolute ``http``/``https`` URLs with a host, without whitespace, at most
4000 characters.  HOOK-3: a relative reference resolves (RFC 3986 §5) against the URL the
document was finally fetched from, or ``--public-url``.  HOOK-4: the fragment is never sent;
its ``key=value`` pairs (joined by ``&``) override the connection settings of that URL::

    target = prepare("http://app.test/cb?leg=b#rc=0&ct=1000", RequestKind.CALLBACK)
    target.url                    # 'http://app.test/cb?leg=b'
    target.settings.retries       # 0
    target.settings.connect_timeout   # 1.0 (seconds)

Keys are case-sensitive, other keys and fragments of another shape (``#top``, ``#a=1&b``) are
ignored; an out-of-range value raises :class:`UrlError` 11100 (11243 for ``rp``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

from dialtone.errors import DialtoneError

__all__ = [
    "DEFAULTS",
    "MAX_URL",
    "OVERRIDE_RANGES",
    "RETRY_CLASSES",
    "ConnectionSettings",
    "RequestKind",
    "Target",
    "UrlError",
    "check",
    "form_body",
    "parse_settings",
    "prepare",
    "resolve",
    "split_fragment",
    "with_query",
]

MAX_URL = 4000
"""HOOK-2: the longest URL accepted, in characters, after resolution (fragment included)."""
OVERRIDE_RANGES = {"ct": (100, 10000), "rt": (100, 15000), "tt": (100, 60000), "rc": (0, 5)}
"""HOOK-4: integer overrides (milliseconds, or a count for ``rc``) and their inclusive ranges."""
RETRY_CLASSES = frozenset({"ct", "rt", "4xx", "5xx", "all"})
"""HOOK-4/HOOK-5: the tokens of an ``rp`` list."""


class UrlError(DialtoneError):
    """A URL dialtone must not request: ``code`` is 11100, or 11243 for a bad ``rp``."""

    def __init__(self, code: int, message: str, url: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.url = url


class RequestKind(enum.Enum):
    """Which column of the HOOK-4 defaults applies to a request."""

    RCML = "rcml"
    """Voice URL, fallback, action, redirect and whisper fetches."""
    CALLBACK = "callback"
    """Call-progress status callbacks."""


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """The HOOK-4 settings of one request; times in milliseconds as in the fragment."""

    ct: int
    rt: int
    tt: int
    rc: int
    rp: frozenset[str]

    @property
    def connect_timeout(self) -> float:
        """``ct`` in seconds: connect timeout of each attempt."""
        return self.ct / 1000

    @property
    def response_timeout(self) -> float:
        """``rt`` in seconds: time to a complete response, from the start of each attempt."""
        return self.rt / 1000

    @property
    def total_timeout(self) -> float:
        """``tt`` in seconds: all attempts and the waits between them."""
        return self.tt / 1000

    @property
    def retries(self) -> int:
        """``rc``: how many attempts may follow the first."""
        return self.rc

    def retries_on(self, failure_class: str | None) -> bool:
        """True when a failure of ``failure_class`` (``ct``, ``rt``, ``4xx``, ``5xx``) is
        retried (HOOK-5); ``None`` (a failure outside the classes) never is."""
        return failure_class is not None and ("all" in self.rp or failure_class in self.rp)


DEFAULTS = {
    RequestKind.RCML: ConnectionSettings(5000, 15000, 15000, 1, frozenset({"ct"})),
    RequestKind.CALLBACK: ConnectionSettings(5000, 15000, 45000, 2, frozenset({"ct", "5xx"})),
}
"""HOOK-4: the settings of a URL without overrides, per request kind."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL ready to request: ``url`` without its fragment, and its settings."""

    url: str
    settings: ConnectionSettings


def _show(value: str, limit: int = 80) -> str:
    """Quote a value for a message, shortened to ``limit`` characters."""
    text = value if len(value) <= limit else value[: limit - 3] + "..."
    return repr(text)


def split_fragment(url: str) -> tuple[str, str]:
    """Return ``url`` without its fragment, and the fragment without ``#`` (``""`` if none)."""
    bare, _, fragment = url.partition("#")
    return bare, fragment


def check(url: str) -> str:
    """Return ``url`` when it is usable (HOOK-2, and its fragment per HOOK-4); else raise."""
    if not url:
        raise UrlError(11100, "URL is empty", url)
    if any(c.isspace() or c < " " or c == "\x7f" for c in url):
        raise UrlError(11100, f"URL {_show(url)} contains whitespace or a control character", url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number in range raises ValueError
    except ValueError as exc:
        raise UrlError(11100, f"URL {_show(url)} is not a URL ({exc})", url) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UrlError(11100, f"URL {_show(url)} is not an absolute http(s) URL", url)
    if not parts.hostname:
        raise UrlError(11100, f"URL {_show(url)} has no host", url)
    if len(url) > MAX_URL:
        raise UrlError(11100, f"URL is {len(url)} characters long; allowed: {MAX_URL}", url)
    parse_settings(parts.fragment, RequestKind.RCML, url=url)
    return url


def resolve(reference: str, base: str | None) -> str:
    """Resolve ``reference`` against ``base`` (RFC 3986 §5.2, strict) and :func:`check` it.

    ``base`` is the URL a document was finally fetched from, or ``--public-url`` for URLs
    stored through the API or configuration (HOOK-3); ``None`` when there is none, which
    leaves a relative reference invalid.  The fragment is kept, for :func:`prepare`.
    """
    if reference and any(c.isspace() or c < " " or c == "\x7f" for c in reference):
        return check(reference)  # raises: whitespace
    try:
        # Strict RFC 3986 §5.2.2: a reference with a scheme is taken as it is (urljoin would
        # read "http:g" against an http base as relative).
        absolute = bool(urlsplit(reference).scheme)
    except ValueError:
        absolute = True  # check() reports it
    if not absolute and reference:
        if base is None:
            raise UrlError(
                11100, f"URL {_show(reference)} is relative and there is no base", reference
            )
        reference = urljoin(base, reference)
    return check(reference)


def parse_settings(fragment: str, kind: RequestKind, *, url: str = "") -> ConnectionSettings:
    """Return the settings of a request of ``kind`` with the overrides of ``fragment``."""
    base = DEFAULTS[kind]
    pairs = fragment.split("&") if fragment else []
    if not pairs or not all("=" in pair for pair in pairs):
        return base
    found: dict[str, int] = {}
    rp = base.rp
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key in OVERRIDE_RANGES:
            low, high = OVERRIDE_RANGES[key]
            number = int(value) if value.isascii() and value.isdigit() and len(value) < 9 else -1
            if not low <= number <= high:
                raise UrlError(
                    11100,
                    f"fragment override {_show(pair)} is out of range; allowed: {key}={low}-{high}",
                    url,
                )
            found[key] = number
        elif key == "rp":
            tokens = frozenset(t.strip().lower() for t in value.split(","))
            bad = sorted(tokens - RETRY_CLASSES)
            if bad:
                raise UrlError(
                    11243,
                    f"fragment override {_show(pair)} has unknown class {_show(bad[0])}; "
                    "allowed: rp= a comma-separated list of ct, rt, 4xx, 5xx, all",
                    url,
                )
            rp = tokens
    return ConnectionSettings(
        ct=found.get("ct", base.ct),
        rt=found.get("rt", base.rt),
        tt=found.get("tt", base.tt),
        rc=found.get("rc", base.rc),
        rp=rp,
    )


def prepare(url: str, kind: RequestKind) -> Target:
    """Check an absolute ``url`` and split it into what is sent and its settings (HOOK-4)."""
    check(url)
    bare, fragment = split_fragment(url)
    return Target(bare, parse_settings(fragment, kind, url=url))


def with_query(url: str, params: Iterable[tuple[str, str]]) -> str:
    """HOOK-1 GET: ``url`` with ``params`` appended after any query already there (kept).

    ``url`` has no fragment.  Values are form-encoded (UTF-8, space as ``+``).
    """
    encoded = urlencode(list(params))
    if not encoded:
        return url
    if "?" not in url:
        return f"{url}?{encoded}"
    if url.endswith(("?", "&")):
        return url + encoded
    return f"{url}&{encoded}"


def form_body(params: Iterable[tuple[str, str]]) -> bytes:
    """HOOK-1 POST: ``application/x-www-form-urlencoded`` UTF-8 body of ``params``."""
    return urlencode(list(params)).encode("ascii")
