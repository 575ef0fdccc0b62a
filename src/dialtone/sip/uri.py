"""SIP and SIPS URIs (RFC 3261 §19.1): parse, serialise, compare.

A :class:`SipUri` keeps every component as it was written, still %-escaped, so that
``str(parse_uri(text)) == text`` for any canonical URI and proxies forward what they
received.  Equality in the RFC sense (§19.1.4: escapes resolved, host and parameters
case-insensitive, some parameters significant only when present in both) is
:func:`uris_equal`; the dataclass ``==`` is plain structural equality.

Only ``sip:`` and ``sips:`` are parsed; any other well-formed scheme raises
``SipParseError("Unsupported URI scheme")`` so that a Request-URI like ``tel:`` can be
answered with 416 (§8.2.2.1) while the request itself stays representable (the
Request-URI is kept as a raw string by :class:`dialtone.sip.message.Request`).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dialtone.sip.errors import SipParseError

# RFC 3261 §25.1.  The classes let '%' through and escapes are checked apart: Python's
# re is several times faster on plain classes than on (class|%HH) alternations, and
# every repetition below is linear even on a 64 KiB hostile URI.
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()%"  # unreserved + the '%' of escapes
_USER = rf"[{_UNRESERVED}&=+$,;?/]+"  # user-unreserved: & = + $ , ; ? /
_PASSWORD = rf"[{_UNRESERVED}&=+$,]*"
_PCHAR = rf"[{_UNRESERVED}\[\]/:&+$]+"  # paramchar: param-unreserved [ ] / : & + $
_HCHAR = rf"[{_UNRESERVED}\[\]/?:+$]"  # hnv-unreserved: [ ] / ? : + $
_URI_RE = re.compile(
    rf"(?:(?P<user>{_USER})(?::(?P<password>{_PASSWORD}))?@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_\-.]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    rf"(?P<params>(?:;{_PCHAR}(?:={_PCHAR})?)*)"
    rf"(?:\?(?P<headers>{_HCHAR}+={_HCHAR}*(?:&{_HCHAR}+={_HCHAR}*)*))?"
)
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# The common shape, ``sip:user@host:port;name=value``, without escapes, password, IPv6
# or headers: a strict subset of _URI_RE's language (no '%', ';', '?', '/' or ',' in the
# user; no '%' in parameters), on which both regexes split the same way, so
# _parse_fast gives parse_uri's answer in one match (tests/sip/test_fast_paths.py).
FAST_URI = (
    r"(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$]+)@)?([A-Za-z0-9_\-.]+)(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+)?)*)"
)
_FAST_URI_RE = re.compile(FAST_URI)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_ESC_RE = re.compile(r"%[0-9A-Fa-f]{2}")
# §19.1.4: %HH is equivalent to the character unless the character is reserved.
_RESERVED = frozenset(";/?:@&=+$,")
# §19.1.4: these parameters make two URIs differ even when only one of them has it
# (the RFC's own examples add ``transport`` to the rule's user/ttl/method/maddr).
_SIGNIFICANT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


@dataclass(frozen=True, slots=True, kw_only=True)
class SipUri:
    """A parsed ``sip:``/``sips:`` URI; components are kept %-escaped as received.

    ``host`` keeps an IPv6 reference in brackets (``[2001:db8::1]``); ``params`` and
    ``headers`` keep their order; a parameter without value (``;lr``) has value None.
    """

    host: str
    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        # Concatenation of the parts, in one pass (a Contact is serialised per REGISTER).
        user = self.user
        if user is None:
            out = f"{self.scheme}:{self.host}"
        elif self.password is None:
            out = f"{self.scheme}:{user}@{self.host}"
        else:
            out = f"{self.scheme}:{user}:{self.password}@{self.host}"
        if self.port is not None:
            out += ":" + str(self.port)
        if self.params:
            out += "".join([f";{n}" if v is None else f";{n}={v}" for n, v in self.params])
        if self.headers:
            out += "?" + "&".join(f"{n}={v}" for n, v in self.headers)
        return out

    def param(self, name: str, default: str | None = None) -> str | None:
        """Return the value of URI parameter ``name`` (case-insensitive).

        A parameter present without value (``;lr``) returns ``""``; an absent one returns
        ``default``.  Use :meth:`has_param` to test flags.
        """
        key = name.lower()
        for pname, value in self.params:
            if pname == key or pname.lower() == key:  # the equality spares most lower()s
                return "" if value is None else value
        return default

    def has_param(self, name: str) -> bool:
        """Return True when parameter ``name`` is present, with or without a value."""
        params = self.params
        if not params:  # most URIs: nothing to look at
            return False
        key = name.lower()
        for pname, _ in params:  # noqa: SIM110  # a loop: any(<generator>) costs twice
            if pname == key or pname.lower() == key:
                return True
        return False

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter in lower case (``"tcp"``), or None (§19.1.1)."""
        value = self.param("transport")
        return value.lower() if value else None

    @property
    def is_secure(self) -> bool:
        """True for ``sips:`` URIs (§19.1: TLS on every hop)."""
        return self.scheme.lower() == "sips"

    def with_params(
        self, pairs: Iterable[tuple[str, str | None]] = (), /, **params: str | None
    ) -> SipUri:
        """Return a copy with parameters set (replacing same-named ones in place).

        Pass names that are not Python identifiers as ``pairs``; a value of None makes
        a flag parameter (``;lr``).
        """
        updates = [*pairs, *params.items()]
        new = list(self.params)
        for name, value in updates:
            key = name.lower()
            for i, (pname, _) in enumerate(new):
                if pname.lower() == key:
                    new[i] = (pname, value)
                    break
            else:
                new.append((name, value))
        return dataclasses.replace(self, params=tuple(new))

    def without_params(self, *names: str) -> SipUri:
        """Return a copy without the named parameters (all parameters when none given)."""
        keys = {n.lower() for n in names}
        kept = tuple(p for p in self.params if keys and p[0].lower() not in keys)
        return dataclasses.replace(self, params=kept)

    def replace(self, **changes: Any) -> SipUri:
        """Return a copy with fields replaced, like :func:`dataclasses.replace`."""
        return dataclasses.replace(self, **changes)

    def aor(self) -> SipUri:
        """Return the address-of-record form: no parameters, no headers (§10.3 step 5)."""
        return dataclasses.replace(self, params=(), headers=())


MEMO_SIZE = 2048
"""Entries of each parse memo (:func:`parse_uri`, ``headers.parse_name_addr``)."""
MEMO_MAX_LENGTH = 256
"""Longer texts are parsed without the memo, so each holds ~2 MB at the very most."""


def parse_uri(text: str) -> SipUri:
    """Parse a SIP or SIPS URI (RFC 3261 §19.1.1, §25.1).

    Raises ``SipParseError("Unsupported URI scheme")`` for a well-formed URI of another
    scheme and ``SipParseError("Bad URI")`` for anything that is not a URI.

    Texts up to :data:`MEMO_MAX_LENGTH` characters are memoised: the Request-URIs of a
    server's in-dialog requests are its own Contact, those of its INVITEs a handful of
    numbers, so most recur (the value is immutable; errors are raised again).
    """
    if len(text) <= MEMO_MAX_LENGTH:
        return _uri_memo(text)
    return _parse_uri_once(text)


def _parse_uri_once(text: str) -> SipUri:
    # parse_uri without the memo: the fast path, else the general parser.
    m = _FAST_URI_RE.fullmatch(text)
    if m is not None:
        uri = uri_from_parts(*m.groups())
        if uri is not None:
            return uri
    return _parse_uri(text)


_uri_memo = functools.lru_cache(maxsize=MEMO_SIZE)(_parse_uri_once)


def uri_from_fast_match(m: re.Match[str], group: int) -> SipUri | None:
    """Build the URI matched by :data:`FAST_URI` at groups ``group``.. of ``m``.

    None when the general parser must decide (it raises): a bad host shape or port.
    """
    return uri_from_parts(*m.group(group, group + 1, group + 2, group + 3, group + 4))


def uri_from_parts(
    scheme: str, user: str | None, host: str, port_text: str | None, params_text: str
) -> SipUri | None:
    """:func:`uri_from_fast_match` from the five groups of :data:`FAST_URI`, in order
    (for a caller that has them all from one ``m.groups()``)."""
    if host[0] in "-." or ".." in host:
        return None
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            return None
    params: tuple[tuple[str, str | None], ...] = ()
    if params_text:
        if params_text.find(";", 1) < 0:  # one parameter: no list to build
            name, eq, value = params_text[1:].partition("=")
            params = ((name, value),) if eq else ((name, None),)
        else:
            pairs: list[tuple[str, str | None]] = []
            for piece in params_text[1:].split(";"):  # _split_param, in line
                name, eq, value = piece.partition("=")
                pairs.append((name, value) if eq else (name, None))
            params = tuple(pairs)
    uri = _SipUriTwin()  # _new_uri, in line
    uri.host = host
    uri.scheme = scheme
    uri.user = user
    uri.password = None
    uri.port = port
    uri.params = params
    uri.headers = ()
    uri.__class__ = SipUri  # type: ignore[assignment]  # see check_twin
    return uri  # type: ignore[return-value]


def _parse_uri(text: str) -> SipUri:
    # The general parser, for every shape (and every error).
    scheme, colon, rest = text.partition(":")
    if scheme.lower() not in ("sip", "sips"):
        if colon and _SCHEME_RE.fullmatch(scheme):
            raise SipParseError("Unsupported URI scheme")
        raise SipParseError("Bad URI")
    m = _URI_RE.fullmatch(rest)
    if m is None or ("%" in rest and _BAD_ESCAPE_RE.search(rest)):
        raise SipParseError("Bad URI")
    user, password, host, port_text, params_text, headers_text = m.groups()
    _check_host(host)
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise SipParseError("Bad URI port")
    params: tuple[tuple[str, str | None], ...] = ()
    if params_text:
        params = tuple([_split_param(p) for p in params_text[1:].split(";")])
    headers: tuple[tuple[str, str], ...] = ()
    if headers_text:
        headers = tuple([_split_header(h) for h in headers_text.split("&")])
    return _new_uri(host, scheme, user, password, port, params, headers)


def slot_setters(cls: type) -> list[Callable[[Any, Any], None]]:
    """Return the slot setters of frozen slotted dataclass ``cls``, in field order.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``;
    calling the slot descriptors directly builds the same object in about a third of the
    time, which matters to the parser (a REGISTER holds four URIs).  For trusted,
    already-validated values only.
    """
    return [getattr(cls, f.name).__set__ for f in dataclasses.fields(cls)]


def check_twin(twin: type, cls: type) -> None:
    """Fail at import unless ``twin`` has exactly the slots of dataclass ``cls``.

    A twin is a plain slotted class whose instances become ``cls`` instances by
    ``__class__`` assignment (CPython allows it between classes of the same layout:
    same base, same slots).  Filling a twin with ordinary attribute stores and then
    switching its class builds a frozen dataclass in half the time of
    :func:`slot_setters` (a descriptor call per field) and a fifth of ``__init__``;
    the parser builds a dozen such objects per REGISTER.  For trusted, already
    validated values only.
    """
    # CPython lays slots out in sorted order whatever order they are declared in, and
    # compares the sorted names for __class__ assignment: the set is what must match.
    slots = sorted(getattr(twin, "__slots__", ()))
    if slots != sorted(f.name for f in dataclasses.fields(cls)):
        raise TypeError(f"{twin.__name__} does not mirror the fields of {cls.__name__}")


class _SipUriTwin:
    __slots__ = ("headers", "host", "params", "password", "port", "scheme", "user")
    host: str
    scheme: str
    user: str | None
    password: str | None
    port: int | None
    params: tuple[tuple[str, str | None], ...]
    headers: tuple[tuple[str, str], ...]


check_twin(_SipUriTwin, SipUri)


def _new_uri(
    host: str,
    scheme: str,
    user: str | None,
    password: str | None,
    port: int | None,
    params: tuple[tuple[str, str | None], ...],
    headers: tuple[tuple[str, str], ...],
) -> SipUri:
    uri = _SipUriTwin()
    uri.host = host
    uri.scheme = scheme
    uri.user = user
    uri.password = password
    uri.port = port
    uri.params = params
    uri.headers = headers
    uri.__class__ = SipUri  # type: ignore[assignment]  # see check_twin
    return uri  # type: ignore[return-value]


def _check_host(host: str) -> None:
    # The regex accepts the host alphabet; the shape is checked here, linearly.
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise SipParseError("Bad URI host") from None
    elif host[0] in "-." or ".." in host:
        raise SipParseError("Bad URI host")


def _split_param(text: str) -> tuple[str, str | None]:
    name, eq, value = text.partition("=")
    return (name, value) if eq else (name, None)


def _split_header(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    return (name, value)


def unescape(text: str) -> str:
    """Resolve every %HH escape (each byte becomes the code point of the same value)."""
    if "%" not in text:
        return text
    return _ESC_RE.sub(lambda m: chr(int(m.group()[1:], 16)), text)


def _normalise(text: str) -> str:
    # §19.1.4: escapes of unreserved characters are resolved; escapes of reserved ones
    # stay escapes (upper-cased so "%3a" equals "%3A").
    if "%" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        char = chr(int(m.group()[1:], 16))
        return m.group().upper() if char in _RESERVED else char

    return _ESC_RE.sub(one, text)


def uris_equal(a: SipUri, b: SipUri) -> bool:
    """Compare two SIP URIs by the rules of RFC 3261 §19.1.4.

    Scheme, host and parameters compare case-insensitively, userinfo case-sensitively,
    all after resolving escapes; a port, ``user``, ``ttl``, ``method``, ``maddr`` or
    ``transport`` present in only one URI makes them differ; other parameters present in
    only one are ignored; headers must all be present in both and match.
    """
    if a.scheme.lower() != b.scheme.lower() or a.port != b.port:
        return False
    if _normalise(a.host).lower() != _normalise(b.host).lower():
        return False
    if a.user is not None and b.user is not None:
        if _normalise(a.user) != _normalise(b.user):
            return False
    elif a.user is not b.user:
        return False
    if (a.password is None) != (b.password is None) or (
        a.password is not None
        and b.password is not None
        and _normalise(a.password) != _normalise(b.password)
    ):
        return False
    pa = {n.lower(): _normalise(v).lower() if v else "" for n, v in a.params}
    pb = {n.lower(): _normalise(v).lower() if v else "" for n, v in b.params}
    for name in pa.keys() & pb.keys():
        if pa[name] != pb[name]:
            return False
    if any((name in pa) != (name in pb) for name in _SIGNIFICANT_PARAMS):
        return False
    ha = sorted((n.lower(), unescape(v)) for n, v in a.headers)
    hb = sorted((n.lower(), unescape(v)) for n, v in b.headers)
    return ha == hb
