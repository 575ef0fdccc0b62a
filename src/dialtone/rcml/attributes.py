"""Value parsers for RCML attributes and noun text.

Each parser takes an already trimmed string and returns the typed value, or raises
:class:`ValueProblem` with the Notification code and a detail that names the attribute, the
offending value and what is allowed (DOC-21).  The parser adds the element, line and URL.
Nothing here knows about XML, so the REST API can reuse the URL and event parsers.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urljoin, urlsplit

from dialtone.sip.errors import SipParseError
from dialtone.sip.uri import parse_uri, uris_equal

__all__ = [
    "EVENTS",
    "METHODS",
    "OVERRIDE_RANGES",
    "RETRY_CLASSES",
    "ValueProblem",
    "check_language",
    "check_voice",
    "normalise_number",
    "parse_bool",
    "parse_caller_id",
    "parse_choice",
    "parse_client_login",
    "parse_credentials",
    "parse_digits",
    "parse_events",
    "parse_finish_on_key",
    "parse_int",
    "parse_method",
    "parse_overrides",
    "parse_sip_uri",
    "resolve_url",
    "show",
    "sip_uris_equal",
]

METHODS = ("GET", "POST")
#: Call-progress events of CB-3, in the order a leg goes through them.
EVENTS = ("initiated", "ringing", "answered", "completed")
#: HOOK-4 fragment overrides with integer values: key → inclusive range.
OVERRIDE_RANGES = {"ct": (100, 10000), "rt": (100, 15000), "tt": (100, 60000), "rc": (0, 5)}
#: HOOK-4 ``rp`` tokens (HOOK-5 failure classes).
RETRY_CLASSES = ("ct", "rt", "4xx", "5xx", "all")

MAX_URL = 4000  # HOOK-2
MAX_SIP_URI = 255  # DIAL-7, without the header part
MAX_SIP_HEADERS = 1024  # DIAL-7, the part after '?'
MAX_CREDENTIAL = 255  # DIAL-7
MAX_CALLER_ID = 64  # DIAL-1

_DIGITS_RE = re.compile(r"[0-9]+")
_NUMBER_RE = re.compile(r"\+?[0-9]{1,32}")
_NUMBER_JUNK = str.maketrans("", "", " \t\r\n-.()")
_LOGIN_RE = re.compile(r"[A-Za-z0-9._~-]{1,64}")  # API-31
# RFC 3261 §25.1 user = 1*( unreserved / escaped / user-unreserved )
_SIP_USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")  # RFC 3261 §25.1 token
_EVENT_SPLIT_RE = re.compile(r"[\s,]+")
_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")
_VOICES = ("man", "woman", "alice")
_VOICE_FAMILIES = ("Polly.", "Google.")
_FINISH_KEYS = frozenset("0123456789*#")


class ValueProblem(Exception):
    """A value outside what its attribute allows: ``code`` and a ready-made ``detail``.

    With ``warning`` the value is only replaced by its default and a log-1 notice recorded
    (13511 for ``<Say voice|language>``).
    """

    def __init__(self, code: int, detail: str, *, warning: bool = False) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.warning = warning


def show(value: str, limit: int = 80) -> str:
    """Quote ``value`` for a message: one line, at most ``limit`` characters."""
    text = value.encode("unicode_escape").decode("ascii") if not value.isprintable() else value
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"'{text}'"


def _small_int(value: str) -> int | None:
    """Return the value of a string of ASCII digits, None otherwise (huge → very large)."""
    if not _DIGITS_RE.fullmatch(value):
        return None
    return int(value) if len(value) <= 12 else 10**12


def parse_int(name: str, value: str, *, low: int, high: int, code: int) -> int:
    """Parse a decimal integer (ASCII digits only) within ``low..high`` inclusive."""
    number = _small_int(value)
    if number is None or not low <= number <= high:
        raise ValueProblem(code, f"{name} is {show(value)}; allowed: an integer {low}-{high}")
    return number


def parse_method(name: str, value: str, *, code: int) -> str:
    """Parse an HTTP method, case-insensitively, into ``GET`` or ``POST``."""
    method = value.upper() if value.isascii() else value
    if method not in METHODS:
        raise ValueProblem(code, f"{name} is {show(value)}; allowed: GET, POST")
    return method


def parse_bool(name: str, value: str, *, code: int) -> bool:
    """Parse ``true`` or ``false`` (case-sensitive, like every RCML value but methods)."""
    if value not in ("true", "false"):
        raise ValueProblem(code, f"{name} is {show(value)}; allowed: true, false")
    return value == "true"


def parse_choice(name: str, value: str, choices: tuple[str, ...], *, code: int) -> str:
    """Return ``value`` when it is one of ``choices`` (case-sensitive)."""
    if value not in choices:
        raise ValueProblem(code, f"{name} is {show(value)}; allowed: {', '.join(choices)}")
    return value


def resolve_url(name: str, value: str, base: str) -> str:
    """Resolve ``value`` against ``base`` (RFC 3986 §5) and check it per HOOK-2 and HOOK-4.

    The result is absolute ``http``/``https`` with a host, has no whitespace, is at most
    4000 characters and keeps its fragment, whose overrides are validated here (11100,
    11243 for ``rp``) and applied later by the webhook client.
    """
    allowed = "allowed: an absolute http(s) URL or a relative reference"
    if not value:
        raise ValueProblem(11100, f"{name} is empty; {allowed}")
    if any(c.isspace() or c < " " or c == "\x7f" for c in value):
        raise ValueProblem(
            11100, f"{name} {show(value)} contains whitespace or a control character; {allowed}"
        )
    try:
        # RFC 3986 §5.2.2 strict: a reference with a scheme is taken as it is
        # (urljoin would read "http:///x" as relative to an http base).
        url = value if urlsplit(value).scheme else urljoin(base, value)
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ValueProblem(11100, f"{name} {show(value)} is not a URL ({exc}); {allowed}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueProblem(11100, f"{name} {show(url)} is not an http(s) URL; {allowed}")
    if not parts.hostname:
        raise ValueProblem(11100, f"{name} {show(url)} has no host; {allowed}")
    if len(url) > MAX_URL:
        raise ValueProblem(
            11100, f"{name} is {len(url)} characters long after resolution; allowed: {MAX_URL}"
        )
    parse_overrides(parts.fragment, name=name)
    return url


def parse_overrides(fragment: str, *, name: str = "URL") -> dict[str, int | frozenset[str]]:
    """Return the HOOK-4 connection overrides of a URL fragment (without the ``#``).

    A fragment made of ``key=value`` pairs joined by ``&`` is read; unknown keys and
    fragments of any other shape are ignored.  ``ct``/``rt``/``tt``/``rc`` out of range raise
    11100, a bad ``rp`` list 11243.  ``rp`` comes back as a frozenset of RETRY_CLASSES.
    """
    pairs = fragment.split("&") if fragment else []
    if not pairs or not all("=" in pair for pair in pairs):
        return {}
    found: dict[str, int | frozenset[str]] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key in OVERRIDE_RANGES:
            low, high = OVERRIDE_RANGES[key]
            number = _small_int(value)
            if number is None or not low <= number <= high:
                raise ValueProblem(
                    11100,
                    f"{name} fragment override {show(pair)} is out of range; "
                    f"allowed: {key}={low}-{high}",
                )
            found[key] = number
        elif key == "rp":
            tokens = [t.strip().lower() for t in value.split(",")]
            bad = [t for t in tokens if t not in RETRY_CLASSES]
            if bad:
                raise ValueProblem(
                    11243,
                    f"{name} fragment override {show(pair)} has unknown class {show(bad[0])}; "
                    f"allowed: rp= a comma-separated list of {', '.join(RETRY_CLASSES)}",
                )
            found[key] = frozenset(tokens)
    return found


def parse_events(name: str, value: str) -> frozenset[str]:
    """Parse a ``statusCallbackEvent`` list (CB-2): whitespace/comma separated, any case,
    duplicates ignored; an unknown token raises 21626 naming it.  Empty gives ``{}``."""
    events: set[str] = set()
    for token in _EVENT_SPLIT_RE.split(value):
        if not token:
            continue
        event = token.lower() if token.isascii() else token
        if event not in EVENTS:
            raise ValueProblem(
                21626,
                f"{name} has unknown event {show(token)}; allowed: {', '.join(EVENTS)}",
            )
        events.add(event)
    return frozenset(events)


def parse_caller_id(value: str) -> str:
    """Check a ``<Dial callerId>`` (DIAL-1): ``+``digits, digits, ``client:<login>`` or a SIP
    user token, at most 64 characters (13214)."""
    ok = len(value) <= MAX_CALLER_ID and (
        (value.startswith("client:") and _LOGIN_RE.fullmatch(value[7:]) is not None)
        or _SIP_USER_RE.fullmatch(value) is not None
    )
    if not ok:
        raise ValueProblem(
            13214,
            f"callerId is {show(value)}; allowed: +digits, digits, client:<login> or a SIP "
            f"user part, at most {MAX_CALLER_ID} characters",
        )
    return value


def normalise_number(value: str) -> str:
    """Normalise ``<Number>`` text (DIAL-6): drop spaces, ``-``, ``.``, ``(``, ``)``; the
    rest must be ``\\+?[0-9]{1,32}`` (13223).  ``123-321-4321`` → ``1233214321``."""
    number = value.translate(_NUMBER_JUNK)
    if not _NUMBER_RE.fullmatch(number):
        raise ValueProblem(
            13223,
            f"number {show(value)} is not a phone number; allowed: an optional '+' and 1-32 "
            "digits, with spaces, '-', '.', '(' and ')' ignored",
        )
    return number


def parse_digits(name: str, value: str, *, alphabet: str, limit: int, code: int) -> str:
    """Check a DTMF string: 1..``limit`` characters of ``alphabet`` (``0-9*#`` plus pauses)."""
    if not 1 <= len(value) <= limit or any(c not in alphabet for c in value):
        shown = alphabet.replace("0123456789", "0-9")
        raise ValueProblem(
            code, f"{name} is {show(value)}; allowed: 1-{limit} characters of {shown}"
        )
    return value


def parse_finish_on_key(value: str) -> str:
    """Check ``<Gather finishOnKey>`` (VRB-4): one of ``0-9 * #``, or empty for none."""
    if value and (len(value) != 1 or value not in _FINISH_KEYS):
        raise ValueProblem(
            13310, f"finishOnKey is {show(value)}; allowed: one of 0-9, *, #, or empty"
        )
    return value


def parse_client_login(text: str) -> str:
    """Return the Client login of ``<Client>`` text (DIAL-5): ``client:`` prefix removed,
    API-31 Login syntax (12200)."""
    login = text.removeprefix("client:")
    if not login:
        raise ValueProblem(12200, "client name is empty; allowed: a Client login")
    if not _LOGIN_RE.fullmatch(login):
        raise ValueProblem(
            12200,
            f"client name {show(login)} is not a valid login; allowed: 1-64 characters of "
            "A-Z a-z 0-9 . _ ~ -",
        )
    return login


def parse_sip_uri(value: str, *, sips_allowed: bool) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Split ``<Sip>`` text into the URI without headers and the INVITE headers (DIAL-7).

    The URI must be ``sip:``/``sips:`` (RFC 3261) of at most 255 characters before ``?``
    and ``sips:`` only with a TLS transport (13243); the header part is at most 1024
    characters (13251).  Header names must be tokens (13243) and become ``X-<name>``
    unless they start with ``X-`` (LEG-4); names and values are unescaped.
    """
    uri, _, header_text = value.partition("?")
    if not uri:
        raise ValueProblem(13243, "Sip URI is empty; allowed: a sip: or sips: URI")
    if len(uri) > MAX_SIP_URI:
        raise ValueProblem(
            13243,
            f"Sip URI {show(uri)} is {len(uri)} characters long; allowed: {MAX_SIP_URI} "
            "without the header part",
        )
    if len(header_text) > MAX_SIP_HEADERS:
        raise ValueProblem(
            13251,
            f"Sip URI headers are {len(header_text)} characters long; allowed: {MAX_SIP_HEADERS}",
        )
    try:
        parsed = parse_uri(value)
    except (SipParseError, ValueError) as exc:
        raise ValueProblem(
            13243, f"Sip URI {show(value)} is not valid ({exc}); allowed: a sip: or sips: URI"
        ) from None
    if parsed.is_secure and not sips_allowed:
        raise ValueProblem(
            13243, f"Sip URI {show(uri)} needs TLS, and no TLS transport is configured"
        )
    headers: list[tuple[str, str]] = []
    for raw_name, raw_value in parsed.headers:
        try:
            name, text = unquote(raw_name, errors="strict"), unquote(raw_value, errors="strict")
        except UnicodeDecodeError:
            raise ValueProblem(
                13243, f"Sip URI header {show(raw_name)} is not UTF-8 once unescaped"
            ) from None
        if not _TOKEN_RE.fullmatch(name):
            raise ValueProblem(
                13243, f"Sip URI header name {show(name)} is not a SIP token (RFC 3261 §25.1)"
            )
        if any((c < " " and c != "\t") or c == "\x7f" for c in text):
            raise ValueProblem(13243, f"Sip URI header {name} has a control character in its value")
        headers.append((name if name[:2].lower() == "x-" else f"X-{name}", text))
    return uri, tuple(headers)


def sip_uris_equal(a: str, b: str) -> bool:
    """Compare two already validated SIP URIs by RFC 3261 §19.1.4 (DIAL-12)."""
    return uris_equal(parse_uri(a), parse_uri(b))


def parse_credentials(username: str | None, password: str | None) -> None:
    """Check ``<Sip>`` digest credentials (DIAL-7): both or neither, each 1-255 (13249)."""
    if (username is None) != (password is None):
        given, missing = ("username", "password") if password is None else ("password", "username")
        raise ValueProblem(13249, f"{given} is given without {missing}; allowed: both or neither")
    for name, value in (("username", username), ("password", password)):
        if value is not None and not 1 <= len(value) <= MAX_CREDENTIAL:
            raise ValueProblem(
                13249,
                f"{name} is {len(value)} characters long; allowed: 1-{MAX_CREDENTIAL}",
            )


def check_voice(value: str) -> str:
    """Return the ``<Say voice>`` (VRB-1) or raise 13511 for one dialtone does not know
    (the parser then records a warning and uses ``man``)."""
    if value.lower() in _VOICES:
        return value.lower()
    if any(value.startswith(f) and len(value) > len(f) for f in _VOICE_FAMILIES):
        return value
    raise ValueProblem(
        13511,
        f"voice {show(value)} is not known, 'man' is used; allowed: man, woman, alice, "
        "Polly.*, Google.*",
        warning=True,
    )


def check_language(value: str) -> str:
    """Return the ``<Say language>`` (VRB-1) or raise 13511 when it is not a BCP 47 tag
    (the parser then records a warning and uses ``en-US``)."""
    if not _LANGUAGE_RE.fullmatch(value):
        raise ValueProblem(
            13511,
            f"language {show(value)} is not a BCP 47 tag, 'en-US' is used; allowed: a tag "
            "such as en-US, fr-FR, de",
            warning=True,
        )
    return value
