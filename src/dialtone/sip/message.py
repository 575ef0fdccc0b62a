"""SIP requests and responses: the header list, parsing and serialisation (RFC 3261 §7).

:func:`parse_message` only splits a datagram into start line, headers and body and
checks what every element needs (§8.2, §16.3, §18.3): the start line, the mandatory
headers, CSeq, Content-Length.  Everything else is parsed on demand by the accessors of
:class:`Request` and :class:`Response` and cached until that header changes, so a
registrar pays only for what it reads.  Header values are kept exactly as received
(unfolded), which is what proxies and digest checks need.

Bytes never make the parser raise anything but :class:`SipParseError`; header bytes
that are not UTF-8 survive a parse/serialise round trip via ``surrogateescape``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from dialtone.sip.errors import SipParseError
from dialtone.sip.framing import MAX_MESSAGE_SIZE as MAX_MESSAGE_SIZE
from dialtone.sip.framing import datagram_body, split_head
from dialtone.sip.headerlist import TOP_VIA
from dialtone.sip.headerlist import Headers as Headers  # re-exported: its home for callers
from dialtone.sip.headers import (
    CANON,
    CSeq,
    NameAddr,
    Via,
    is_token,
    media_type,
    parse_cseq,
    parse_date,
    parse_name_addr,
    parse_name_addr_list,
    parse_uint,
    parse_via,
    parse_via_list,
)
from dialtone.sip.headers import (
    canonical_name as canonical_name,  # re-exported: Headers' naming rule
)
from dialtone.sip.status import reason_phrase
from dialtone.sip.uri import SipUri, parse_uri

KNOWN_METHODS = frozenset(
    {
        *("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"),  # RFC 3261
        *("INFO", "PRACK", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"),
    }
)
"""Methods defined by RFC 3261 and the common extensions (used to pick 400 vs 501)."""

# Headers that may appear once only; two of them make a request invalid (RFC 4475
# multi01, mcl01: a second Content-Length makes the framing ambiguous).
_SINGLE = ("call-id", "cseq", "from", "to", "max-forwards", "content-length")
_MANDATORY = {"call-id": "Call-ID", "from": "From", "to": "To", "cseq": "CSeq", "via": "Via"}
_REQUIRED = frozenset(_MANDATORY)
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+")
_URI_SHAPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:[^\x00-\x20]+")

_ABSENT: Final = object()  # a cached "header absent" is None, so misses need another mark


_MAX32: Final = 2**32 - 1
_COLON_JOIN: Final = ": ".join


def _first(headers: Headers, key: str, name: str) -> str:
    # The first line of a header the accessors need (Message._required, by key).
    keys = headers._keys
    if key in keys:
        return headers._items[keys.index(key)][1]
    raise SipParseError(f"Missing {name}")


def _optional_uint(headers: Headers, key: str, name: str, maximum: int) -> int | None:
    # An optional integer header: None when absent, one line at most, parse_uint's
    # grammar.  A short ASCII digit string is all of parse_uint's work, done in line.
    keys = headers._keys
    count = keys.count(key)
    if count == 0:
        return None
    if count > 1:
        raise SipParseError(f"Multiple {name}")
    value = headers._items[keys.index(key)][1]
    if value.isdigit() and value.isascii() and len(value) < 10:
        number = int(value)
        if number <= maximum:
            return number
    return parse_uint(value, name, maximum)  # the general path (and its errors)


class Message:
    """What requests and responses share: headers, body and the lazy header accessors.

    ``headers`` (the :class:`Headers`) may be changed or replaced at will: the parsed
    values the accessors cache live in the Headers object, per header, so changing one
    header (or putting in new Headers) drops exactly the parses it made stale.
    """

    # ``headers`` is a plain slot, not a property: it is read a dozen times per message.
    __slots__ = ("body", "headers", "version")

    headers: Headers

    def __init__(
        self, headers: Headers | Iterable[tuple[str, str]] | None, body: bytes, version: str
    ) -> None:
        self.headers = headers if isinstance(headers, Headers) else Headers(headers or ())
        self.body = body
        self.version = version

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"Missing {name}")
        return value

    @property
    def call_id(self) -> str:
        """The Call-ID (§20.8)."""
        keys = self.headers._keys
        if "call-id" in keys:
            return self.headers._items[keys.index("call-id")][1]
        raise SipParseError("Missing Call-ID")

    # The accessors below look their parse up in the Headers' cache first: one dict
    # lookup on the hot path.  On a miss they read the raw line straight from the
    # Headers' lists (what _required does, without its two calls).

    @property
    def cseq(self) -> CSeq:
        """The parsed CSeq (§20.16)."""
        headers = self.headers
        value: CSeq | None = headers._parsed.get("cseq")
        if value is None:
            value = headers._parsed["cseq"] = _parse_cseq(_first(headers, "cseq", "CSeq"))
        return value

    @property
    def vias(self) -> list[Via]:
        """Every Via value, top first, across all Via lines (§20.42)."""
        headers = self.headers
        value: list[Via] | None = headers._parsed.get("via")
        if value is None:
            lines = headers.get_all("Via")
            value = headers._parsed["via"] = [v for line in lines for v in parse_via_list(line)]
        return list(value)

    @property
    def top_via(self) -> Via:
        """The first Via: the one a response is routed by (§18.2.2)."""
        headers = self.headers
        value: Via | None = headers._parsed.get(TOP_VIA)
        if value is None:
            # The whole first line must parse, not just its first via-parm.
            line = _first(headers, "via", "Via")
            if "," in line:
                value = parse_via_list(line)[0]
            else:  # parse_via_list of one via-parm, in line
                text = line.strip(" \t")
                if not text:
                    raise SipParseError("Bad Via")
                value = parse_via(text)
            headers._parsed[TOP_VIA] = value
        return value

    @property
    def from_(self) -> NameAddr:
        """The parsed From (§20.20)."""
        headers = self.headers
        value: NameAddr | None = headers._parsed.get("from")
        if value is None:
            value = headers._parsed["from"] = parse_name_addr(_first(headers, "from", "From"))
        return value

    @property
    def to(self) -> NameAddr:
        """The parsed To (§20.39)."""
        headers = self.headers
        value: NameAddr | None = headers._parsed.get("to")
        if value is None:
            value = headers._parsed["to"] = parse_name_addr(_first(headers, "to", "To"))
        return value

    @property
    def contacts(self) -> list[NameAddr]:
        """Every Contact value across all Contact lines; ``[WILDCARD]`` for ``*``."""
        headers = self.headers
        value: list[NameAddr] | None = headers._parsed.get("contact")
        if value is None:
            lines = headers.get_all("Contact")
            out = [c for line in lines for c in parse_name_addr_list(line)]
            if len(out) > 1 and any(c.is_wildcard for c in out):
                raise SipParseError("Bad Contact")  # §10.2.2: '*' stands alone
            value = headers._parsed["contact"] = out
        return list(value)

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0..255), None when absent (§8.1.1.6)."""
        parsed = self.headers._parsed
        value: int | object | None = parsed.get("max-forwards", _ABSENT)
        if value is _ABSENT:
            value = parsed["max-forwards"] = _optional_uint(
                self.headers, "max-forwards", "Max-Forwards", 255
            )
        return value  # type: ignore[return-value]  # int | None once not _ABSENT

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds, None when absent (§20.19)."""
        parsed = self.headers._parsed
        value: int | object | None = parsed.get("expires", _ABSENT)
        if value is _ABSENT:
            value = parsed["expires"] = _optional_uint(self.headers, "expires", "Expires", _MAX32)
        return value  # type: ignore[return-value]  # int | None once not _ABSENT

    @property
    def content_type(self) -> str | None:
        """The body's lower-cased media type without parameters (``application/sdp``)."""
        value = self.headers.get("Content-Type")
        return None if value is None else media_type(value)

    @property
    def date(self) -> str | None:
        """The Date header validated against §20.17 (GMT only), None when absent."""
        value = self.headers.get("Date")
        if value is not None:
            parse_date(value)
        return value

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise: start line, ``Name: value`` lines, a Content-Length that matches
        the body (replacing any other), a blank line and the body (§7, §18.3)."""
        headers = self.headers
        if "content-length" not in headers._keys:
            # Every response we build: no Content-Length to replace, so one
            # comprehension instead of a loop that tests each name.
            # ": ".join((name, value)) is f"{name}: {value}" for the str pairs Headers
            # holds, done in C for every line.
            lines = [self._start_line()]
            lines += map(_COLON_JOIN, headers._items)
            lines += (f"Content-Length: {len(self.body)}", "", "")
            return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body
        lines = [self._start_line()]
        length = str(len(self.body))
        have_length = False
        for name, value in self.headers._items:
            if name == "Content-Length":
                if have_length:
                    continue
                value, have_length = length, True
            lines.append(f"{name}: {value}")
        if not have_length:
            lines.append(f"Content-Length: {length}")
        lines += ("", "")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body


class Request(Message):
    """A SIP request.  ``uri`` is the raw Request-URI; :attr:`ruri` parses it."""

    __slots__ = ("_ruri", "method", "uri")

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body, version)
        self.method = method
        self.uri = uri
        self._ruri: tuple[str, SipUri] | None = None

    @property
    def ruri(self) -> SipUri:
        """The parsed Request-URI.

        Raises ``SipParseError`` with status 416 for a scheme other than sip/sips
        (§8.2.2.1) and 400 for a malformed URI or one with headers (§19.1.1 Table 1).
        """
        cached = self._ruri
        if cached is not None and cached[0] == self.uri:
            return cached[1]
        try:
            uri = parse_uri(self.uri)
        except SipParseError as err:
            if err.reason == "Unsupported URI scheme":
                raise SipParseError(err.reason, status=416) from None
            raise SipParseError("Bad Request-URI") from None
        if uri.headers:
            raise SipParseError("Bad Request-URI")  # RFC 4475 escruri
        self._ruri = (self.uri, uri)
        return uri

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body, version)
        self.status = status
        self.reason = reason_phrase(status) if reason is None else reason

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def parse_message(data: bytes) -> Request | Response:
    """Parse one datagram (or one framed stream message) into a Request or Response.

    Lenient where RFC 3261 and RFC 4475 ask for it: leading CRLFs (§7.5), folded lines,
    LWS around ``:``, any header-name case, compact forms, bare-LF line ends, a missing
    blank line, bytes after the body (dropped: §18.3), no Content-Length (the rest of the
    datagram is the body).  Raises :class:`SipParseError`; for a request whose headers
    were readable the error carries them in ``partial`` so a 400 can be sent.
    """
    lines, rest = split_head(data)
    items: list[tuple[str, str]] = []
    keys: list[str] = []
    add_item, add_key, known = items.append, keys.append, _NAMES.get
    error: SipParseError | None = None
    for line in lines[1:]:
        # Split at ": " first: a name in _NAMES has no ':', so a hit means this is the
        # first ':' of the line and the value is what partition(":") + strip gives,
        # without the copy that dropping the space costs.  A miss takes the general
        # split (the one the names were learnt from).
        name, colon, value = line.partition(": ")
        entry = known(name)  # a hit is a name seen before, so not a folded line either
        if entry is None or not colon:
            name, colon, value = line.partition(":")
            entry = known(name)
        if entry is None or not colon:
            if line[:1] in (" ", "\t"):
                # §7.3.1: a line starting with whitespace continues the previous value.
                if items:
                    name, value = items[-1]
                    items[-1] = (name, (value + " " + line.strip(" \t")).strip(" \t"))
                else:
                    error = error or SipParseError("Bad header folding")
                continue
            entry = _learn_name(name) if colon else None
            if entry is None:
                error = error or SipParseError("Bad header line")
                continue
        add_item((entry[0], value.strip(" \t")))
        add_key(entry[1])
    headers = Headers.__new__(Headers)  # Headers._trusted, in line
    headers._items, headers._keys, headers._gen, headers._parsed = items, keys, 0, {}
    start = lines[0]
    if start[:4].upper() == "SIP/":
        return _finish_response(start, headers, rest, error)
    return _finish_request(start, headers, rest, error)


# Header names exactly as received -> (canonical name, lookup key).  Seeded with the
# usual spellings; names met in traffic are added (bounded) so that the common case of
# parse_message is one dict lookup per header line.
_NAMES: dict[str, tuple[str, str]] = dict(CANON)
_NAMES.update({entry[0]: entry for entry in CANON.values()})
_NAMES_LIMIT = 4096


def _learn_name(raw: str) -> tuple[str, str] | None:
    name = raw.rstrip(" \t")
    entry = CANON.get(name.lower())
    if entry is None:
        if not is_token(name):
            return None
        entry = (name, name.lower())
    if len(_NAMES) < _NAMES_LIMIT:
        _NAMES[raw] = entry
    return entry


def _check_headers(message: Message) -> CSeq:
    headers = message.headers
    keys = headers._keys
    present = set(keys)
    if not present >= _REQUIRED:
        for key, name in _MANDATORY.items():
            if key not in present:
                raise SipParseError(f"Missing {name}")
    if len(present) != len(keys):
        for key in _SINGLE:
            if keys.count(key) > 1:
                raise SipParseError(f"Multiple {canonical_name(key)}")
    # Validate CSeq now: the transaction layer matches by it (§17.1.3, §17.2.3).
    cseq = headers._parsed["cseq"] = _parse_cseq(headers._items[keys.index("cseq")][1])
    return cseq


def _parse_cseq(value: str) -> CSeq:
    seq, _, method = value.partition(" ")
    if method in KNOWN_METHODS and seq.isascii() and seq.isdigit() and len(seq) < 10:
        # CSeq(seq, method) without the NamedTuple's Python-level __new__.
        return _new_tuple(CSeq, (int(seq), method))
    return parse_cseq(value)


_new_tuple = tuple.__new__


def _finish_request(
    start: str, headers: Headers, rest: bytes, error: SipParseError | None
) -> Request:
    parts = start.split(" ")
    if len(parts) == 3:
        method, uri, version = parts
    else:  # keep a best guess so the error can still carry a partial request
        method, uri, version = parts[0], "", ""
    if method not in KNOWN_METHODS and not is_token(method):
        raise SipParseError("Bad Request-Line")  # not even a request: nothing to answer
    request = _new_request(method, uri, headers)
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version.upper()):
            raise SipParseError(
                "Version Not Supported", version_not_supported=True, partial=request
            )
        raise SipParseError("Bad Request-Line", partial=request)
    if not _URI_SHAPE_RE.fullmatch(uri):
        raise SipParseError("Bad Request-URI", partial=request)
    try:
        if error is not None:
            raise error
        keys = headers._keys
        if "content-length" not in keys:
            request.body = rest
        else:
            length = headers._items[keys.index("content-length")][1]
            request.body = b"" if length == "0" else datagram_body(length, rest)
        cseq = _check_headers(request)
    except SipParseError as err:
        raise err.with_partial(request) from None
    if cseq.method != method:
        # RFC 4475 mismatch01/02: 400, or 501 when the method is unknown anyway.
        status = 400 if method in KNOWN_METHODS else 501
        raise SipParseError("CSeq method mismatch", status=status, partial=request)
    return request


def _new_request(method: str, uri: str, headers: Headers) -> Request:
    # Request(method, uri, headers) without the __init__ chain (every request received
    # comes through here); the same attributes, the defaults the parser relies on.
    request = Request.__new__(Request)
    request.headers = headers
    request.body = b""
    request.version = "SIP/2.0"
    request.method = method
    request.uri = uri
    request._ruri = None
    return request


def _new_response(status: int, reason: str | None, headers: Headers) -> Response:
    # Response(status, reason, headers) without the __init__ chain (make_response).
    response = Response.__new__(Response)
    response.headers = headers
    response.body = b""
    response.version = "SIP/2.0"
    response.status = status
    response.reason = reason_phrase(status) if reason is None else reason
    return response


def _finish_response(
    start: str, headers: Headers, rest: bytes, error: SipParseError | None
) -> Response:
    parts = start.split(" ", 2)
    if len(parts) < 2:
        raise SipParseError("Bad Status-Line")
    version, code = parts[0], parts[1]
    if version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version.upper()):
            raise SipParseError("Version Not Supported", version_not_supported=True)
        raise SipParseError("Bad Status-Line")
    # §7.2: Status-Code is 3DIGIT, first digit 1-6 (RFC 4475 bigcode).
    if len(code) != 3 or not (code.isascii() and code.isdigit()) or not "1" <= code[0] <= "6":
        raise SipParseError("Bad Status-Line")
    if error is not None:
        raise error
    # The version is case-insensitive (§7.1); it is kept in the upper case we send.
    response = _new_response(int(code), parts[2] if len(parts) == 3 else "", headers)
    keys = headers._keys  # headers.get("Content-Length"), in line
    length = headers._items[keys.index("content-length")][1] if "content-length" in keys else None
    response.body = datagram_body(length, rest)
    _check_headers(response)
    return response


def is_answerable(request: Request) -> bool:
    """Return True when ``request`` carries what a response needs (§8.2.6.2).

    That is a parseable top Via (where to send it) and From, To, Call-ID and CSeq lines.
    A :class:`SipParseError`'s ``partial`` that fails this is dropped (spec SIP-2).
    """
    headers = request.headers
    if not all(name in headers for name in ("From", "To", "Call-ID", "CSeq")):
        return False
    try:
        request.top_via  # noqa: B018
    except SipParseError:
        return False
    return True


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """Build the response to ``request`` as RFC 3261 §8.2.6 prescribes.

    Copies every Via (in order), From, To, Call-ID and CSeq verbatim (and Timestamp into
    a 100, §8.2.6.1); adds ``;tag=`` to To when ``to_tag`` is given and To has none;
    appends ``headers``.  The reason defaults to the standard phrase of ``status``.
    """
    src_items, src_keys = request.headers._items, request.headers._keys
    # Copied values are the request's own, as received: no re-validation (and the
    # (name, value) tuples themselves are shared: they are immutable).
    vias = src_keys.count("via")
    if vias == 1:  # the usual single Via line: found by its key, in C
        items = [src_items[src_keys.index("via")]]
    else:  # the lines named Via are the lines keyed via (Headers' canonical names)
        items = [item for item in src_items if item[0] == "Via"]
    keys = ["via"] * len(items)
    # From, To, Call-ID and CSeq, in this order, each when present; then Timestamp
    # (into a 100 only).
    if "from" in src_keys:
        items.append(src_items[src_keys.index("from")])
        keys.append("from")
    if "to" in src_keys:
        item = src_items[src_keys.index("to")]
        if to_tag is not None and not _has_tag(request):
            item = (item[0], f"{item[1]};tag={to_tag}")
        items.append(item)
        keys.append("to")
    if "call-id" in src_keys:
        items.append(src_items[src_keys.index("call-id")])
        keys.append("call-id")
    if "cseq" in src_keys:
        items.append(src_items[src_keys.index("cseq")])
        keys.append("cseq")
    if status == 100 and "timestamp" in src_keys:
        items.append(src_items[src_keys.index("timestamp")])
        keys.append("timestamp")
    out = Headers._trusted(items, keys)
    if headers:
        out._extend(headers)  # out.add() for each, in one loop
    return _new_response(status, reason, out)


def trying_bytes(request: Request) -> bytes | None:
    """The bytes of the server transaction's 100 Trying to ``request``: those of
    ``make_response(request, 100)`` with the request's Timestamp added once more
    (§8.2.6.1), serialised, without building the Response (every INVITE gets one).

    None when that Timestamp holds a CR or LF: ``Headers.add`` refuses it, and the
    caller takes that path for its error.
    """
    src_items, src_keys = request.headers._items, request.headers._keys
    timestamp = None
    if "timestamp" in src_keys:
        timestamp = src_items[src_keys.index("timestamp")]
        value = timestamp[1]
        if "\r" in value or "\n" in value:
            return None
    lines = [_TRYING_LINE]
    if src_keys.count("via") == 1:  # make_response's lines, then to_bytes' rendering
        lines.append(_COLON_JOIN(src_items[src_keys.index("via")]))
    else:
        lines += [_COLON_JOIN(item) for item in src_items if item[0] == "Via"]
    for key in ("from", "to", "call-id", "cseq"):
        if key in src_keys:
            lines.append(_COLON_JOIN(src_items[src_keys.index(key)]))
    if timestamp is not None:  # copied by make_response, then added again
        lines += (_COLON_JOIN(timestamp), f"Timestamp: {timestamp[1]}")
    lines += ("Content-Length: 0", "", "")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


_TRYING_LINE: Final = f"SIP/2.0 100 {reason_phrase(100)}"


def _has_tag(request: Request) -> bool:
    try:
        return request.to.tag is not None
    except SipParseError:
        # A To we cannot parse: a tag appended after it would be guesswork; keep it verbatim.
        return True
