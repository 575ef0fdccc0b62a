"""SIP requests and responses: the header list, parsing and serialisation (RFC 3261 §7).

:func:`parse_message` only splits a datagram into start line, headers and body and
checks what every element needs (§8.2, §16.3, §18.3): the start line, the mandatory
headers, CSeq, Content-Length.  Everything else is parsed on demand by the accessors of
:class:`Request` and :class:`Response` and cached until the headers change, so a
registrar pays only for what it reads.  Header values are kept exactly as received
(unfolded), which is what proxies and digest checks need.

Bytes never make the parser raise anything but :class:`SipParseError`; header bytes
that are not UTF-8 survive a parse/serialise round trip via ``surrogateescape``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar, cast

from dialtone.sip.errors import SipParseError
from dialtone.sip.framing import MAX_MESSAGE_SIZE as MAX_MESSAGE_SIZE
from dialtone.sip.framing import datagram_body, split_head
from dialtone.sip.headers import (
    CANON,
    LIST_HEADERS,
    CSeq,
    NameAddr,
    Via,
    is_token,
    media_type,
    parse_cseq,
    parse_date,
    parse_expires,
    parse_max_forwards,
    parse_name_addr,
    parse_name_addr_list,
    parse_via_list,
    split_quoted,
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

_T = TypeVar("_T")


class Headers:
    """Ordered, multi-valued SIP headers with case-insensitive names.

    Names are canonicalised on insert (compact forms expanded, known headers in their
    usual case); every header line is one ``(name, value)`` entry, in order.
    """

    __slots__ = ("_gen", "_items", "_keys")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        self._keys: list[str] = []
        self._gen = 0
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _trusted(cls, items: list[tuple[str, str]], keys: list[str]) -> Headers:
        # The parser has already canonicalised and checked every entry.
        h = cls.__new__(cls)
        h._items, h._keys, h._gen = items, keys, 0
        return h

    @staticmethod
    def _entry(name: str, value: str) -> tuple[str, str]:
        entry = CANON.get(name.lower())
        if entry is None:
            if not is_token(name):
                raise ValueError(f"header name is not a token: {name!r}")
            entry = (name, name.lower())
        if "\r" in value or "\n" in value:
            # A CR or LF would let a value inject headers into the serialised message.
            raise ValueError(f"header value contains CR or LF: {value!r}")
        return entry

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Append a header line (or put it on top with ``first=True``, as a new Via)."""
        canon, key = self._entry(name, value)
        if first:
            self._items.insert(0, (canon, value))
            self._keys.insert(0, key)
        else:
            self._items.append((canon, value))
            self._keys.append(key)
        self._gen += 1

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` line by one, at the place of the first (else at the end)."""
        canon, key = self._entry(name, value)
        at = self._keys.index(key) if key in self._keys else len(self._keys)
        self.remove(name)
        self._items.insert(at, (canon, value))
        self._keys.insert(at, key)
        self._gen += 1

    def remove(self, name: str) -> int:
        """Remove every ``name`` line; return how many were removed."""
        key = self._key(name)
        kept = [(k, item) for k, item in zip(self._keys, self._items, strict=True) if k != key]
        removed = len(self._keys) - len(kept)
        if removed:
            self._keys = [k for k, _ in kept]
            self._items = [item for _, item in kept]
            self._gen += 1
        return removed

    @staticmethod
    def _key(name: str) -> str:
        lower = name.lower()
        entry = CANON.get(lower)
        return lower if entry is None else entry[1]

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the value of the first ``name`` line, else ``default``."""
        key = self._key(name)
        for k, item in zip(self._keys, self._items, strict=True):
            if k == key:
                return item[1]
        return default

    def get_all(self, name: str) -> list[str]:
        """Return the value of every ``name`` line, each line whole, in order."""
        key = self._key(name)
        return [item[1] for k, item in zip(self._keys, self._items, strict=True) if k == key]

    def values(self, name: str) -> list[str]:
        """Return the elements of a list header across all its lines (``Allow``, ``Require``).

        Commas inside quotes and ``<>`` do not split; empty elements are dropped.  Headers
        that are not lists (``WWW-Authenticate``, ``Authorization``, ``Date``, unknown
        ones) come back one element per line, like :meth:`get_all`.
        """
        lines = self.get_all(name)
        if self._key(name) not in LIST_HEADERS:
            return lines
        return [piece for line in lines for piece in split_quoted(line, ",") if piece]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._keys

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def items(self) -> list[tuple[str, str]]:
        """Return a copy of all ``(name, value)`` lines, in order."""
        return list(self._items)

    def copy(self) -> Headers:
        """Return an independent copy."""
        return Headers._trusted(list(self._items), list(self._keys))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._keys == other._keys and [v for _, v in self._items] == [
            v for _, v in other._items
        ]

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Message:
    """What requests and responses share: headers, body and the lazy header accessors."""

    __slots__ = ("_cache", "_cache_gen", "_headers", "body", "version")

    def __init__(
        self, headers: Headers | Iterable[tuple[str, str]] | None, body: bytes, version: str
    ) -> None:
        self._headers = headers if isinstance(headers, Headers) else Headers(headers or ())
        self.body = body
        self.version = version
        self._cache: dict[str, object] = {}
        self._cache_gen = -1

    @property
    def headers(self) -> Headers:
        """The header lines; changing them invalidates the parsed accessors."""
        return self._headers

    @headers.setter
    def headers(self, headers: Headers) -> None:
        self._headers = headers
        self._cache_gen = -1

    def _cached(self, key: str, compute: Callable[[], _T]) -> _T:
        gen = self._headers._gen
        if self._cache_gen != gen:
            self._cache.clear()
            self._cache_gen = gen
        try:
            return cast(_T, self._cache[key])
        except KeyError:
            value = compute()
            self._cache[key] = value
            return value

    def _required(self, name: str) -> str:
        value = self._headers.get(name)
        if value is None:
            raise SipParseError(f"Missing {name}")
        return value

    @property
    def call_id(self) -> str:
        """The Call-ID (§20.8)."""
        return self._required("Call-ID")

    @property
    def cseq(self) -> CSeq:
        """The parsed CSeq (§20.16)."""
        return self._cached("cseq", lambda: parse_cseq(self._required("CSeq")))

    @property
    def vias(self) -> list[Via]:
        """Every Via value, top first, across all Via lines (§20.42)."""

        def compute() -> list[Via]:
            return [v for line in self._headers.get_all("Via") for v in parse_via_list(line)]

        return list(self._cached("vias", compute))

    @property
    def top_via(self) -> Via:
        """The first Via: the one a response is routed by (§18.2.2)."""
        vias = self._cached("top_via", lambda: parse_via_list(self._required("Via")))
        return vias[0]

    @property
    def from_(self) -> NameAddr:
        """The parsed From (§20.20)."""
        return self._cached("from", lambda: parse_name_addr(self._required("From")))

    @property
    def to(self) -> NameAddr:
        """The parsed To (§20.39)."""
        return self._cached("to", lambda: parse_name_addr(self._required("To")))

    @property
    def contacts(self) -> list[NameAddr]:
        """Every Contact value across all Contact lines; ``[WILDCARD]`` for ``*``."""

        def compute() -> list[NameAddr]:
            lines = self._headers.get_all("Contact")
            out = [c for line in lines for c in parse_name_addr_list(line)]
            if len(out) > 1 and any(c.is_wildcard for c in out):
                raise SipParseError("Bad Contact")  # §10.2.2: '*' stands alone
            return out

        return list(self._cached("contacts", compute))

    def _optional_int(self, name: str, parse: Callable[[str], int]) -> int | None:
        lines = self._headers.get_all(name)
        if len(lines) > 1:
            raise SipParseError(f"Multiple {name}")
        return parse(lines[0]) if lines else None

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0..255), None when absent (§8.1.1.6)."""
        return self._cached("mf", lambda: self._optional_int("Max-Forwards", parse_max_forwards))

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds, None when absent (§20.19)."""
        return self._cached("expires", lambda: self._optional_int("Expires", parse_expires))

    @property
    def content_type(self) -> str | None:
        """The body's lower-cased media type without parameters (``application/sdp``)."""
        value = self._headers.get("Content-Type")
        return None if value is None else media_type(value)

    @property
    def date(self) -> str | None:
        """The Date header validated against §20.17 (GMT only), None when absent."""
        value = self._headers.get("Date")
        if value is not None:
            parse_date(value)
        return value

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise: start line, ``Name: value`` lines, a Content-Length that matches
        the body (replacing any other), a blank line and the body (§7, §18.3)."""
        lines = [self._start_line()]
        length = str(len(self.body))
        have_length = False
        for name, value in self._headers._items:
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
        name, colon, value = line.partition(":")
        entry = known(name)  # a hit is a name seen before, so not a folded line either
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
    headers = Headers._trusted(items, keys)
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


def _check_headers(message: Message) -> None:
    keys = message._headers._keys
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
    message._cache_gen = message._headers._gen
    message._cache["cseq"] = _parse_cseq(message._headers._items[keys.index("cseq")][1])


def _parse_cseq(value: str) -> CSeq:
    seq, _, method = value.partition(" ")
    if method in KNOWN_METHODS and seq.isascii() and seq.isdigit() and len(seq) < 10:
        return CSeq(int(seq), method)
    return parse_cseq(value)


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
    request = Request(method, uri, headers)
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
        request.body = datagram_body(headers.get("Content-Length"), rest)
        _check_headers(request)
        cseq = request.cseq
    except SipParseError as err:
        raise err.with_partial(request) from None
    if cseq.method != method:
        # RFC 4475 mismatch01/02: 400, or 501 when the method is unknown anyway.
        status = 400 if method in KNOWN_METHODS else 501
        raise SipParseError("CSeq method mismatch", status=status, partial=request)
    return request


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
    response = Response(int(code), parts[2] if len(parts) == 3 else "", headers)
    response.body = datagram_body(headers.get("Content-Length"), rest)
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
    # Copied values are the request's own, as received: no re-validation.
    items = [item for item in src_items if item[0] == "Via"]
    keys = ["via"] * len(items)
    for key in ("from", "to", "call-id", "cseq", "timestamp"):
        if key not in src_keys or (key == "timestamp" and status != 100):
            continue
        name, value = src_items[src_keys.index(key)]
        if key == "to" and to_tag is not None and not _has_tag(request):
            value = f"{value};tag={to_tag}"
        items.append((name, value))
        keys.append(key)
    out = Headers._trusted(items, keys)
    for name, value in headers:
        out.add(name, value)
    return Response(status, reason, out)


def _has_tag(request: Request) -> bool:
    try:
        return request.to.tag is not None
    except SipParseError:
        # A To we cannot parse: a tag appended after it would be guesswork; keep it verbatim.
        return True
