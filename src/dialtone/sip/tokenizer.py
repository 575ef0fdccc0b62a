"""The tokenizer of SIP header values (RFC 3261 §25.1): tokens, quoted strings, lists,
``;name=value`` parameters, integers and dates.

Split out of :mod:`dialtone.sip.headers`, which re-exports the public functions (import
them from there, as callers do); the private helpers here are the parameter lookups
and the fast-path parameter splitter the header parsers share.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

from dialtone.sip.errors import SipParseError

# §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_T = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN_RE = re.compile(f"[{_T}]+")
# quoted-string: qdtext or quoted-pair; CR and LF can only be there folded, and values
# reach us unfolded, so they are refused.  No two alternatives share a first character.
_QUOTED = r'"(?:[^"\\\r\n]|\\[^\r\n])*"'
_QUOTED_RE = re.compile(_QUOTED)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
_QUOTE_RE = re.compile(r'["\\\x00-\x08\x0a-\x1f\x7f]')
# generic-param = token [ EQUAL gen-value ];  gen-value = token / host / quoted-string.
# SEMI and EQUAL allow LWS on both sides (§25.1: SEMI = SWS ";" SWS).
_PARAM_RE = re.compile(rf"[ \t]*;[ \t]*([{_T}]+)(?:[ \t]*=[ \t]*({_QUOTED}|[{_T}:\[\]]+))?[ \t]*")
_PLAIN_PARAMS_RE = re.compile(rf"(?:[ \t]*;[ \t]*[{_T}]+(?:[ \t]*=[ \t]*[{_T}:\[\]]+)?)+")
# The parameters of the fast paths (see headers.py): no LWS, no quoted values.
FAST_PARAMS = rf"((?:;[{_T}]+(?:=[{_T}:\[\]]+)?)*)"
_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Params = tuple[tuple[str, str | None], ...]
"""Ordered ``(name, value)`` pairs; value None for a flag; quoted values keep quotes."""


def is_token(text: str) -> bool:
    """Return True when ``text`` is a SIP token (§25.1), e.g. a method or header name."""
    return _TOKEN_RE.fullmatch(text) is not None


def unquote(text: str) -> str:
    """Strip the quotes of a quoted-string and resolve its ``\\x`` escapes; else return as is."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return _QUOTED_PAIR_RE.sub(r"\1", text[1:-1])
    return text


def quote(text: str) -> str:
    """Return ``text`` as a quoted-string (§25.1).

    ``"``, ``\\`` and control characters become quoted-pairs; CR and LF, which no
    quoted-pair can carry, become spaces (so a display name cannot inject a header).
    """
    return '"' + _QUOTE_RE.sub(_quote_one, text) + '"'


def _quote_one(m: re.Match[str]) -> str:
    char = m.group()
    return " " if char in "\r\n" else "\\" + char


@functools.cache
def _splitter(sep: str) -> re.Pattern[str]:
    s = re.escape(sep)
    # Chunks: a quoted-string, an <...> section, a run of plain characters, the
    # separator, or a lone '"'/'<' that never closes (an error).
    return re.compile(rf'"(?:[^"\\]|\\.)*"|<[^>]*>|[^"<{s}]+|{s}|["<]', re.S)


def split_quoted(text: str, sep: str = ",") -> list[str]:
    """Split ``text`` on ``sep`` outside quoted-strings and ``<...>``; strip LWS of pieces.

    ``'"Bob, Jr" <sip:b@x>, <sip:c@y;a=1,2>'`` splits into two pieces.  Empty pieces are
    kept (callers decide whether ``a,,b`` is an error).  Raises ``SipParseError`` on an
    unterminated quoted-string or ``<`` when ``text`` holds ``sep`` at all.
    """
    if sep not in text:
        return [text.strip(" \t")]
    if '"' not in text and "<" not in text:
        return [piece.strip(" \t") for piece in text.split(sep)]
    pieces: list[str] = []
    current: list[str] = []
    for m in _splitter(sep).finditer(text):
        chunk = m.group()
        if chunk == sep:
            pieces.append("".join(current).strip(" \t"))
            current = []
        elif chunk == '"':
            raise SipParseError("Unterminated quoted string")
        elif chunk == "<":
            raise SipParseError("Unbalanced <")
        else:
            current.append(chunk)
    pieces.append("".join(current).strip(" \t"))
    return pieces


def parse_params(text: str) -> Params:
    """Parse ``;name=value;flag`` parameters (§25.1 generic-param), LWS allowed anywhere.

    Values stay raw: a quoted value keeps its quotes (use :func:`unquote`).  Raises
    ``SipParseError("Bad parameter")`` on an empty parameter (``;;``) or stray text.
    """
    text = text.strip(" \t")
    if not text:
        return ()
    if '"' not in text and _PLAIN_PARAMS_RE.fullmatch(text):
        # Fast path (no quoted values): the regex has validated, splitting extracts.
        return tuple([_plain_param(piece) for piece in text[1:].split(";")])
    out: list[tuple[str, str | None]] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _PARAM_RE.match(text, pos)
        if m is None:
            raise SipParseError("Bad parameter")
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    return tuple(out)


def _plain_param(piece: str) -> tuple[str, str | None]:
    name, eq, value = piece.partition("=")
    return (name.strip(" \t"), value.strip(" \t") if eq else None)


def _format_params(params: Params) -> str:
    return "".join([f";{n}" if v is None else f";{n}={v}" for n, v in params])


def _find_param(params: Params, name: str) -> tuple[str, str | None] | None:
    key = name.lower()
    if key.isascii():
        return _pair(params, key)
    for pair in params:
        if pair[0].lower() == key:
            return pair
    return None


def _pair(params: Params, key: str) -> tuple[str, str | None] | None:
    # _find_param for a lower-case ASCII ``key`` (the properties' literals).  Names are
    # nearly always written in lower case: the equality spares most lower() calls.
    for pair in params:
        pname = pair[0]
        if pname == key or pname.lower() == key:
            return pair
    return None


def _value(pair: tuple[str, str | None] | None) -> str | None:
    # What param() returns for the pair _find_param found.
    if pair is None:
        return None
    value = pair[1]
    if value is None:
        return ""
    return value if value[:1] != '"' else unquote(value)  # only a quoted value changes


def fast_params(text: str) -> Params:
    # Parameters matched by _FAST_PARAMS: what parse_params' plain path gives for them.
    if not text:
        return ()
    if text.find(";", 1) < 0:  # one parameter (a tag, a transport): no list to build
        name, eq, value = text[1:].partition("=")
        return ((name, value),) if eq else ((name, None),)
    out: list[tuple[str, str | None]] = []
    for piece in text[1:].split(";"):  # a loop: cheaper than comprehensions here
        name, eq, value = piece.partition("=")
        out.append((name, value) if eq else (name, None))
    return tuple(out)


def _set_param(params: Params, name: str, value: str | None) -> Params:
    key = name.lower()
    out = list(params)
    for i, (pname, _) in enumerate(out):
        if pname.lower() == key:
            out[i] = (pname, value)
            return tuple(out)
    return (*out, (name, value))


def parse_uint(value: str, what: str, maximum: int) -> int:
    """Parse a header value that is ``1*DIGIT`` in 0..``maximum``.

    Raises ``SipParseError(f"Bad {what}")`` otherwise.  The length check keeps a hostile
    10 000-digit value from reaching ``int()`` (which refuses > 4300 digits).
    """
    text = value.strip(" \t")
    if not text or len(text) > 20 or not (text.isascii() and text.isdigit()):
        raise SipParseError(f"Bad {what}")
    number = int(text)
    if number > maximum:
        raise SipParseError(f"Bad {what}")
    return number


def parse_max_forwards(value: str) -> int:
    """Max-Forwards (§20.22): an integer 0..255."""
    return parse_uint(value, "Max-Forwards", 255)


def parse_expires(value: str) -> int:
    """Expires (§20.19) or a Contact ``expires``: delta-seconds 0..2**32-1."""
    return parse_uint(value, "Expires", 2**32 - 1)


def parse_min_expires(value: str) -> int:
    """Min-Expires (§20.23): delta-seconds 0..2**32-1."""
    return parse_uint(value, "Min-Expires", 2**32 - 1)


def parse_content_length(value: str) -> int:
    """Content-Length (§20.14): octets of the body, ``1*DIGIT``."""
    return parse_uint(value, "Content-Length", 2**32 - 1)


def media_type(value: str) -> str:
    """Return the lower-cased ``type/subtype`` of a Content-Type value, without parameters."""
    return value.partition(";")[0].strip(" \t").lower()


def parse_date(value: str) -> datetime:
    """Parse a Date value (§20.17: RFC 1123 date, and the only zone allowed is GMT).

    Raises ``SipParseError("Bad Date")``, e.g. for ``EST`` (RFC 4475 §3.1.2.12).
    """
    m = _DATE_RE.fullmatch(value.strip(" \t"))
    if m is None:
        raise SipParseError("Bad Date")
    _, day, month, year, hh, mm, ss = m.groups()
    try:
        return datetime(
            int(year), _MONTHS.index(month) + 1, int(day), int(hh), int(mm), int(ss), tzinfo=UTC
        )
    except ValueError:
        raise SipParseError("Bad Date") from None
