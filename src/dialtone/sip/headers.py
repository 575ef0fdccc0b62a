"""Structured SIP header values, parsed on demand (RFC 3261 §20, §25.1).

A message keeps every header as its raw string (see :mod:`dialtone.sip.message`); the
functions here turn one value into a typed object when a caller needs it, and raise
:class:`~dialtone.sip.errors.SipParseError` with a reason fit for a 400 when it does not
follow the grammar.  The objects serialise back with ``str()``.

The tokenizer pieces (:func:`split_quoted`, :func:`parse_params`, :func:`unquote`) are
public so other header parsers (digest credentials, Event, Session-Expires) can reuse
them.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from typing import NamedTuple

from dialtone.sip.errors import SipParseError
from dialtone.sip.tokenizer import _QUOTED_RE, _T, FAST_PARAMS, _pair, _value, fast_params
from dialtone.sip.tokenizer import Params as Params
from dialtone.sip.tokenizer import _find_param as _find_param
from dialtone.sip.tokenizer import _format_params as _format_params
from dialtone.sip.tokenizer import _set_param as _set_param
from dialtone.sip.tokenizer import is_token as is_token
from dialtone.sip.tokenizer import media_type as media_type
from dialtone.sip.tokenizer import parse_content_length as parse_content_length
from dialtone.sip.tokenizer import parse_date as parse_date
from dialtone.sip.tokenizer import parse_expires as parse_expires
from dialtone.sip.tokenizer import parse_max_forwards as parse_max_forwards
from dialtone.sip.tokenizer import parse_min_expires as parse_min_expires
from dialtone.sip.tokenizer import parse_params as parse_params
from dialtone.sip.tokenizer import parse_uint as parse_uint
from dialtone.sip.tokenizer import quote as quote
from dialtone.sip.tokenizer import split_quoted as split_quoted
from dialtone.sip.tokenizer import unquote as unquote
from dialtone.sip.uri import (
    FAST_URI,
    MEMO_MAX_LENGTH,
    MEMO_SIZE,
    SipUri,
    check_twin,
    parse_uri,
    uri_from_parts,
)

# via-parm = sent-protocol LWS sent-by; SLASH and COLON allow LWS around them.
_VIA_RE = re.compile(
    rf"[ \t]*([{_T}]+)[ \t]*/[ \t]*([{_T}]+)[ \t]*/[ \t]*([{_T}]+)[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
)
_WS_RE = re.compile(r"[ \t]+")
_TOKEN_WORDS_RE = re.compile(rf"[{_T}]+(?: [{_T}]+)*")
# Fast paths for the shapes nearly every client sends; each is a strict subset of the
# general grammar on which the general parser splits the same way, so the fast result
# is the general one (tests/sip/test_fast_paths.py checks it with hypothesis).  A value
# they do not match takes the general path, which also owns every error.
#   SIP/2.0/UDP host:port;branch=z9hG4bK...;rport
_VIA_FAST_RE = re.compile(rf"(SIP/2\.0/[A-Z]+) ([A-Za-z0-9_\-.]+)(?::([0-9]{{1,5}}))?{FAST_PARAMS}")
#   ["Display" |Display Name ]<sip:user@host:port;uri-params>;header-params
# The display name: a quoted-string without escapes (its unquoted text is the inside),
# or token words separated by single spaces (what the general path's join gives back).
_NAME_ADDR_FAST_RE = re.compile(
    rf'(?:"([^"\\\r\n]*)"[ \t]*|([{_T}]+(?: [{_T}]+)*)[ \t]*)?<{FAST_URI}>{FAST_PARAMS}'
)


# ---------------------------------------------------------------------------- names

_KNOWN_HEADERS = (
    # RFC 3261 §20
    *("Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow"),
    *("Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact"),
    *("Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length"),
    *("Content-Type", "CSeq", "Date", "Error-Info", "Expires", "From", "In-Reply-To"),
    *("Max-Forwards", "Min-Expires", "MIME-Version", "Organization", "Priority"),
    *("Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Record-Route"),
    *("Reply-To", "Require", "Retry-After", "Route", "Server", "Subject", "Supported"),
    *("Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate"),
    # extensions
    *("Accept-Contact", "Allow-Events", "Event", "Identity", "Identity-Info", "Join"),
    *("Min-SE", "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Privacy", "RAck"),
    *("Reason", "Refer-To", "Referred-By", "Reject-Contact", "Replaces"),
    *("Request-Disposition", "RSeq", "Security-Client", "Security-Server"),
    *("Security-Verify", "Service-Route", "Session-Expires", "SIP-ETag", "SIP-If-Match"),
    *("Subscription-State", "History-Info", "Diversion", "Max-Breadth", "Flow-Timer"),
)
# §7.3.3 and the extension RFCs (3265, 3515, 3841, 3892, 4028, 4474): compact forms.
_COMPACT = {
    "i": "Call-ID", "m": "Contact", "f": "From", "t": "To", "v": "Via",
    "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type", "k": "Supported",
    "s": "Subject", "o": "Event", "u": "Allow-Events", "r": "Refer-To", "b": "Referred-By",
    "x": "Session-Expires", "a": "Accept-Contact", "j": "Reject-Contact",
    "d": "Request-Disposition", "y": "Identity", "n": "Identity-Info",
}  # fmt: skip
CANON: dict[str, tuple[str, str]] = {n.lower(): (n, n.lower()) for n in _KNOWN_HEADERS}
"""Lower-cased header name as received -> (canonical name, lookup key)."""
CANON.update({c: (n, n.lower()) for c, n in _COMPACT.items()})
# Unknown headers are not lists to us: their grammar is unknown (RFC 4475 §3.1.1.1).
LIST_HEADERS = frozenset(
    n.lower()
    for n in (
        *("Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow"),
        *("Call-Info", "Contact", "Content-Encoding", "Content-Language", "Error-Info"),
        *("In-Reply-To", "Proxy-Require", "Record-Route", "Require", "Route", "Supported"),
        *("Unsupported", "Via", "Warning", "Allow-Events", "Path", "Service-Route"),
        *("P-Asserted-Identity", "P-Preferred-Identity", "Accept-Contact", "Reason"),
        *("Reject-Contact", "Request-Disposition", "History-Info", "Diversion"),
        *("Security-Client", "Security-Server", "Security-Verify"),
    )
)
"""Lookup keys of the headers whose grammar is a comma-separated list (§7.3.1)."""


def canonical_name(name: str) -> str:
    """Return the canonical spelling of a header name (``i`` -> ``Call-ID``).

    Unknown names are returned as given.
    """
    entry = CANON.get(name.lower())
    return name if entry is None else entry[0]


# ---------------------------------------------------------------------------- CSeq


class CSeq(NamedTuple):
    """A CSeq value (§20.16): sequence number and method."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """Parse ``"<seq> <method>"``; seq must be below 2**31 (§8.1.1.5), method a token."""
    parts = _WS_RE.split(value.strip(" \t"))
    if len(parts) != 2 or not is_token(parts[1]):
        raise SipParseError("Bad CSeq")
    return CSeq(parse_uint(parts[0], "CSeq", 2**31 - 1), parts[1])


# ---------------------------------------------------------------------------- Via


@dataclass(frozen=True, slots=True, kw_only=True)
class Via:
    """One Via value (§20.42): sent-protocol, sent-by and ordered parameters."""

    host: str
    protocol: str = "SIP/2.0/UDP"
    port: int | None = None
    params: Params = ()

    def __str__(self) -> str:
        return f"{self.protocol} {self.sent_by}{_format_params(self.params)}"

    @property
    def sent_by(self) -> str:
        """``host[:port]`` as written in the Via."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def transport(self) -> str:
        """The transport of the sent-protocol, upper case (``"UDP"``, ``"TCP"``, ``"WS"``)."""
        return self.protocol.rpartition("/")[2].upper()

    def param(self, name: str) -> str | None:
        """Return the value of parameter ``name`` ("" for a flag), None when absent."""
        pair = _find_param(self.params, name)
        if pair is None:
            return None
        return "" if pair[1] is None else unquote(pair[1])

    def has_param(self, name: str) -> bool:
        """Return True when parameter ``name`` is present."""
        return _find_param(self.params, name) is not None

    def with_param(self, name: str, value: str | None = None) -> Via:
        """Return a copy with ``name`` set (replaced in place, else appended)."""
        return dataclasses.replace(self, params=_set_param(self.params, name, value))

    # branch, received and rport are read for every request: straight to _pair.

    @property
    def branch(self) -> str | None:
        """The branch parameter (§8.1.1.7), None when absent."""
        for pair in self.params:  # _value(_pair(...)), in line: read for every request
            name = pair[0]
            if name == "branch" or name.lower() == "branch":
                value = pair[1]
                if value is None:
                    return ""
                return value if value[:1] != '"' else unquote(value)
        return None

    @property
    def received(self) -> str | None:
        """The received parameter (§18.2.1), None when absent."""
        return _value(_pair(self.params, "received"))

    @property
    def has_rport(self) -> bool:
        """True when the client asked for symmetric response routing (RFC 3581 §4)."""
        return _pair(self.params, "rport") is not None

    @property
    def rport(self) -> int | None:
        """The rport value filled in by a server (RFC 3581 §4); None for the bare flag."""
        value = self.param("rport")
        return parse_uint(value, "rport", 65535) if value else None

    @property
    def ttl(self) -> int | None:
        """The ttl parameter (0..255), None when absent."""
        value = self.param("ttl")
        return None if value is None else parse_uint(value, "ttl", 255)

    @property
    def maddr(self) -> str | None:
        """The maddr parameter, None when absent."""
        return self.param("maddr")


def parse_via(value: str) -> Via:
    """Parse one via-parm (no commas): ``SIP / 2.0 / UDP host:port ;branch=...``."""
    m = _VIA_FAST_RE.fullmatch(value)
    if m is not None:
        protocol, host, port_text, params_text = m.groups()
        port = None if port_text is None else int(port_text)
        if port is None or port <= 65535:
            via = _ViaTwin()  # _new_via, in line
            via.host = host
            via.protocol = protocol
            via.port = port
            via.params = fast_params(params_text)
            via.__class__ = Via  # type: ignore[assignment]  # see uri.check_twin
            return via  # type: ignore[return-value]
    return _parse_via(value)


def _parse_via(value: str) -> Via:
    # The general parser, for every shape (and every error).
    m = _VIA_RE.match(value)
    if m is None:
        raise SipParseError("Bad Via")
    name, version, transport, host, port = m.groups()
    return _new_via(
        host,
        f"{name}/{version}/{transport}",
        None if port is None else _port(port),
        parse_params(value[m.end() :]),
    )


def _port(text: str) -> int:
    port = int(text)  # the regex allows 1-5 digits only
    if port > 65535:
        raise SipParseError("Bad Via port")
    return port


class _ViaTwin:
    __slots__ = ("host", "params", "port", "protocol")
    host: str
    protocol: str
    port: int | None
    params: Params


check_twin(_ViaTwin, Via)


def _new_via(host: str, protocol: str, port: int | None, params: Params) -> Via:
    via = _ViaTwin()
    via.host = host
    via.protocol = protocol
    via.port = port
    via.params = params
    via.__class__ = Via  # type: ignore[assignment]  # see uri.check_twin
    return via  # type: ignore[return-value]


def parse_via_list(value: str) -> list[Via]:
    """Parse a Via header value holding one or more comma-separated via-parms."""
    if "," not in value:  # one via-parm: what split_quoted would give, without it
        text = value.strip(" \t")
        if not text:
            raise SipParseError("Bad Via")
        return [parse_via(text)]
    pieces = split_quoted(value, ",")
    if not all(pieces):
        raise SipParseError("Bad Via")
    return [parse_via(piece) for piece in pieces]


# ---------------------------------------------------------------------------- name-addr


@dataclass(frozen=True, slots=True, kw_only=True)
class NameAddr:
    """A From, To, Contact, Route or Record-Route value (§20.10, §20.20, §20.39).

    ``display_name`` is unquoted with escapes resolved.  ``params`` are the header
    parameters (``tag``, ``expires``, ``q``...), never the URI's.  ``Contact: *`` is the
    :data:`WILDCARD` value, whose ``uri`` is a placeholder: test ``is_wildcard`` first.
    """

    uri: SipUri
    display_name: str | None = None
    params: Params = ()
    is_wildcard: bool = False

    def __str__(self) -> str:
        if self.is_wildcard:
            return "*"
        params = self.params
        out = f"<{self.uri}>{_format_params(params)}" if params else f"<{self.uri}>"
        name = self.display_name
        if name is None:
            return out
        # Token words separated by single spaces go as they are (one regex: what
        # ``all(map(is_token, name.split(" ")))`` decides), anything else quoted.
        if _TOKEN_WORDS_RE.fullmatch(name) is None:
            name = quote(name)
        return f"{name} {out}"

    def param(self, name: str) -> str | None:
        """Return the (unquoted) value of header parameter ``name``; "" for a flag."""
        pair = _find_param(self.params, name)
        if pair is None:
            return None
        return "" if pair[1] is None else unquote(pair[1])

    def has_param(self, name: str) -> bool:
        """Return True when header parameter ``name`` is present."""
        return _find_param(self.params, name) is not None

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        """Return a copy with header parameter ``name`` set."""
        if self.is_wildcard:
            return dataclasses.replace(self, params=_set_param(self.params, name, value))
        # What dataclasses.replace builds, without its generic field walk.
        return _new_name_addr(self.uri, self.display_name, _set_param(self.params, name, value))

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (§19.3), None when absent."""
        for pair in self.params:  # _value(_pair(...)), in line: read a dozen times a call
            name = pair[0]
            if name == "tag" or name.lower() == "tag":
                value = pair[1]
                if value is None:
                    return ""
                return value if value[:1] != '"' else unquote(value)
        return None

    def with_tag(self, tag: str) -> NameAddr:
        """Return a copy with ``tag`` set."""
        return self.with_param("tag", tag)

    @property
    def expires(self) -> int | None:
        """The Contact ``expires`` parameter (§20.10), None when absent."""
        value = _value(_pair(self.params, "expires"))
        return None if value is None else parse_expires(value)

    @property
    def q(self) -> float | None:
        """The Contact ``q`` parameter, 0..1 (§20.10), None when absent."""
        value = self.param("q")
        if value is None:
            return None
        if not re.fullmatch(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?", value):
            raise SipParseError("Bad q")
        return float(value)


class _NameAddrTwin:
    __slots__ = ("display_name", "is_wildcard", "params", "uri")
    uri: SipUri
    display_name: str | None
    params: Params
    is_wildcard: bool


check_twin(_NameAddrTwin, NameAddr)


def _new_name_addr(uri: SipUri, display_name: str | None, params: Params) -> NameAddr:
    addr = _NameAddrTwin()
    addr.uri = uri
    addr.display_name = display_name
    addr.params = params
    addr.is_wildcard = False
    addr.__class__ = NameAddr  # type: ignore[assignment]  # see uri.check_twin
    return addr  # type: ignore[return-value]


WILDCARD = NameAddr(uri=SipUri(host="*"), is_wildcard=True)
"""``Contact: *`` (§10.2.2: remove all bindings)."""


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``"Bob" <sip:bob@x>;tag=1``, ``Bob <sip:bob@x>`` or ``sip:bob@x;tag=1``.

    In the addr-spec form (no ``<>``) everything after the first ``;`` is a header
    parameter, and a URI holding ``?`` or ``,`` is refused: §20.10 requires ``<>`` then.
    ``*`` gives :data:`WILDCARD`.

    Values up to :data:`MEMO_MAX_LENGTH` characters are memoised (see :data:`MEMO_SIZE`).
    """
    if len(value) <= MEMO_MAX_LENGTH:
        return _name_addr_memo(value)
    return _parse_name_addr_once(value)


def _parse_name_addr_once(value: str) -> NameAddr:
    # parse_name_addr without the memo: the fast path, else the general parser.
    m = _NAME_ADDR_FAST_RE.fullmatch(value)
    if m is not None:
        quoted, words, scheme, user, host, port, uri_params, params = m.groups()
        uri = uri_from_parts(scheme, user, host, port, uri_params)
        if uri is not None:
            addr = _NameAddrTwin()  # _new_name_addr, in line
            addr.uri = uri
            addr.display_name = quoted if quoted is not None else words
            addr.params = fast_params(params)
            addr.is_wildcard = False
            addr.__class__ = NameAddr  # type: ignore[assignment]  # see uri.check_twin
            return addr  # type: ignore[return-value]
    return _parse_name_addr(value)


# Every message of a call repeats its From and To (and a 1xx/2xx pair its Contact),
# character for character: requests and responses of a transaction, the ACK and BYE
# of a dialog.  A parse is a function of the text and its value is immutable, so equal
# text can share it: a bounded LRU memo (errors are not kept, they are raised again).
# MEMO_SIZE values of texts of at most MEMO_MAX_LENGTH characters: about 2 MB at the
# very worst (typically a quarter of that), and at 100 calls/s about 2 s of traffic
# (ten-odd addresses a call), which spans the INVITE, ACK and BYE of a short call.
_name_addr_memo = functools.lru_cache(maxsize=MEMO_SIZE)(_parse_name_addr_once)


def _parse_name_addr(value: str) -> NameAddr:
    # The general parser, for every shape (and every error).
    text = value.strip(" \t")
    if not text:
        raise SipParseError("Empty address")
    if text == "*":
        return WILDCARD
    display: str | None
    if text[0] == '"':
        m = _QUOTED_RE.match(text)
        if m is None:
            raise SipParseError("Unterminated quoted string")
        display = unquote(m.group())
        rest = text[m.end() :].lstrip(" \t")
        if not rest.startswith("<"):
            raise SipParseError("Bad name-addr")
    else:
        lt = text.find("<")
        if lt < 0:
            return _parse_addr_spec(text)
        display = None
        if lt:
            words = _WS_RE.split(text[:lt].strip(" \t"))
            # display-name = *(token LWS) / quoted-string (§25.1): RFC 4475 baddn.
            if words != [""] and not all(map(is_token, words)):
                raise SipParseError("Bad display name")
            display = " ".join(words) or None
        rest = text[lt:]
    gt = rest.find(">")
    if gt < 0:
        raise SipParseError("Unbalanced <")
    # LAQUOT/RAQUOT allow no LWS inside the brackets: RFC 4475 badaspec.
    return _new_name_addr(parse_uri(rest[1:gt]), display, parse_params(rest[gt + 1 :]))


def _parse_addr_spec(text: str) -> NameAddr:
    uri_text, semi, params = text.partition(";")
    uri_text = uri_text.rstrip(" \t")
    if "?" in uri_text or "," in uri_text:
        raise SipParseError("Bad addr-spec")  # RFC 4475 regbadct
    return _new_name_addr(parse_uri(uri_text), None, parse_params(semi + params))


def parse_name_addr_list(value: str) -> list[NameAddr]:
    """Parse a comma-separated list of name-addrs (Contact, Route, Record-Route).

    Commas inside quotes and ``<>`` do not split.  ``*`` must stand alone (§20.10).
    """
    if "," not in value:  # one element: what split_quoted would give, without it
        text = value.strip(" \t")
        if not text:
            raise SipParseError("Bad address list")
        return [parse_name_addr(text)]
    pieces = split_quoted(value, ",")
    if not all(pieces):
        raise SipParseError("Bad address list")
    if len(pieces) > 1 and "*" in pieces:
        raise SipParseError("Bad Contact")
    return [parse_name_addr(piece) for piece in pieces]
