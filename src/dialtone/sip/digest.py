"""HTTP Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760): a pure core.

Server side (registrar, spec REG-1/REG-2, RTE-1): :class:`dialtone.sip.nonce.NonceManager`
issues stateless nonces bound to this server, :func:`build_challenge` writes ``WWW-Authenticate`` /
``Proxy-Authenticate`` values, :func:`verify` checks an ``Authorization`` against the
stored HA1 and :meth:`NonceManager.accept_nc` rejects replayed nonce counts.

Client side (``<Sip username password>``, spec LEG-5): :func:`choose_challenge` picks one
of the far end's challenges and :func:`build_authorization` answers it.

The order of the server-side calls for one request matters::

    params = parse_digest(header_value)                 # DigestError -> 400/403
    status = nonces.check(params.nonce, now, realm=realm)   # STALE -> 401 stale=true
    ok = verify(params, method, ha1)                    # False -> 403
    ok = ok and nonces.accept_nc(params.nonce, params.nc_value)  # False -> 403 (replay)

``accept_nc`` comes *after* ``verify`` so that a forged request cannot burn the nonce
counts of a legitimate client.

Nothing here reads a clock, touches a socket or awaits: time comes in as ``now``.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "DigestAlgorithm",
    "DigestError",
    "DigestParams",
    "build_authorization",
    "build_challenge",
    "choose_challenge",
    "compute_ha1",
    "digest_uri_matches",
    "parse_algorithm",
    "parse_challenges",
    "parse_digest",
    "verify",
]


from dialtone.sip.digest_algorithms import _ALGORITHMS, _HASH_BY_NAME, _HASHES, _MD5_INFO
from dialtone.sip.digest_algorithms import DigestAlgorithm as DigestAlgorithm
from dialtone.sip.digest_algorithms import DigestError as DigestError
from dialtone.sip.digest_algorithms import compute_ha1 as compute_ha1
from dialtone.sip.digest_algorithms import parse_algorithm as parse_algorithm

# --------------------------------------------------------------------------- parsing

# RFC 3261 §25.1: LWS = [*WSP CRLF] 1*WSP. Header values normally arrive unfolded, but a
# folded value is still legal, so "CRLF followed by WSP" counts as white space too.
_LWS = r"(?:[ \t]|\r?\n[ \t])*+"
# RFC 7230 tchar (a superset of the RFC 3261 token alphabet).
_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# RFC 3261 §25.1 quoted-string: qdtext or quoted-pair; a bare CR/LF only as folding.
# Possessive quantifiers (Python 3.11) keep the match linear even on unterminated quotes.
_QUOTED = r'"((?:[^"\\\r\n]++|\\[^\r\n]|\r?\n[ \t])*+)"'

_PARAM_RE = re.compile(rf"({_TCHARS}){_LWS}={_LWS}(?:{_QUOTED}|({_TCHARS})){_LWS}")
_LWS_RE = re.compile(_LWS)
# A new challenge inside one header value: "<scheme> SP ..." or a bare "<scheme>".
_SCHEME_RE = re.compile(rf"({_TCHARS})(?:(?:[ \t]|\r?\n[ \t])+|(?=,)|\Z)")
# RFC 7235 §2.1 token68, used by schemes such as Basic/Bearer that we skip.
_TOKEN68_RE = re.compile(rf"[A-Za-z0-9\-._~+/]+=*{_LWS}(?=,|\Z)")
# The scheme, case-insensitive and ASCII-only (no re.IGNORECASE: it would let U+212A KELVIN
# SIGN match "k" and the like), then LWS or the end.
_HEAD_RE = re.compile(rf"{_LWS}[Dd][Ii][Gg][Ee][Ss][Tt](?:(?:[ \t]|\r?\n[ \t])++|\Z)")
# One list element of parse_digest: a parameter followed by a comma or the end, an empty
# element, or (group 4) everything from where the value stops making sense. Group 4 eats
# the whole rest: matching one character at a time would retry the parameter pattern at
# every later position, quadratic on a 60 kB token.
_ITEM_RE = re.compile(
    rf"({_TCHARS}){_LWS}={_LWS}(?:{_QUOTED}|({_TCHARS})){_LWS}(?:,{_LWS}|\Z)|,{_LWS}|(.+)",
    re.DOTALL,
)
# Fast path of parse_digest for what phones send: ``Digest name="value", name=token``
# with no LWS but after the commas, no escapes, no folding.  Each match is a parameter
# _ITEM_RE would read the same way; group 4 catches any character no parameter covers,
# which sends the value to the general loop (it owns the errors).
_FAST_ITEM_RE = re.compile(
    rf'({_TCHARS})=(?:"([^"\\\r\n]*)"|({_TCHARS}))(?:,[ \t]*|\Z)|(.)', re.DOTALL
)
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_FOLD_RE = re.compile(r"\r?\n[ \t]+")
_HEX_RE = re.compile(r"[0-9A-Fa-f]{1,8}")


@dataclass(frozen=True, slots=True)
class DigestParams:
    """The parameters of one Digest challenge or credentials value.

    ``params`` maps lowercase parameter names to their values, unquoted and unescaped.
    The properties give typed access to the parameters RFC 7616 defines; anything else
    is in ``params``.
    """

    params: Mapping[str, str]

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the parameter ``name`` (case-insensitive), or ``default``."""
        return self.params.get(name.lower(), default)

    @property
    def realm(self) -> str | None:
        """The ``realm`` parameter."""
        return self.params.get("realm")

    @property
    def nonce(self) -> str | None:
        """The ``nonce`` parameter."""
        return self.params.get("nonce")

    @property
    def username(self) -> str | None:
        """The user name: ``username``, else the RFC 7616 §3.4.4 ``username*`` form decoded."""
        value = self.params.get("username")
        if value is not None:
            return value
        extended = self.params.get("username*")
        if extended is None:
            return None
        # RFC 5987 ext-value: charset "'" [ language ] "'" pct-encoded
        charset, sep, rest = extended.partition("'")
        _, sep2, encoded = rest.partition("'")
        if not sep or not sep2:
            return None
        try:
            return urllib.parse.unquote(encoded, encoding=charset or "utf-8", errors="strict")
        except (LookupError, UnicodeDecodeError):
            return None

    @property
    def uri(self) -> str | None:
        """The ``uri`` (digest-uri) parameter."""
        return self.params.get("uri")

    @property
    def response(self) -> str | None:
        """The ``response`` parameter (hex digest)."""
        return self.params.get("response")

    @property
    def cnonce(self) -> str | None:
        """The ``cnonce`` parameter."""
        return self.params.get("cnonce")

    @property
    def nc(self) -> str | None:
        """The ``nc`` parameter exactly as sent (it is hashed as sent)."""
        return self.params.get("nc")

    @property
    def nc_value(self) -> int | None:
        """The nonce count as an integer, or None when absent or not 1–8 hex digits."""
        raw = self.params.get("nc")
        if raw is None or _HEX_RE.fullmatch(raw) is None:
            return None
        return int(raw, 16)

    @property
    def opaque(self) -> str | None:
        """The ``opaque`` parameter."""
        return self.params.get("opaque")

    @property
    def qop(self) -> str | None:
        """The ``qop`` parameter as sent (a list in a challenge, one token in credentials)."""
        return self.params.get("qop")

    @property
    def qop_options(self) -> tuple[str, ...]:
        """The challenge's ``qop`` list, lowercased (RFC 7616 §3.3: ``qop="auth,auth-int"``)."""
        raw = self.params.get("qop")
        if raw is None:
            return ()
        return tuple(part.strip().lower() for part in raw.split(",") if part.strip())

    @property
    def algorithm(self) -> DigestAlgorithm | None:
        """The algorithm; ``MD5`` when absent (RFC 7616 §3.3), None when unsupported."""
        raw = self.params.get("algorithm")
        if raw is None:
            return DigestAlgorithm.MD5
        return _ALGORITHMS.get(raw.lower())

    @property
    def stale(self) -> bool:
        """True when a challenge says ``stale=true`` (case-insensitive, RFC 7616 §3.3)."""
        return self.params.get("stale", "").lower() == "true"


def _skip_lws(value: str, pos: int) -> int:
    """The position after the white space at ``pos``."""
    match = _LWS_RE.match(value, pos)
    return pos if match is None else match.end()


def _unquote(value: str) -> str:
    if "\n" in value:
        # RFC 3261 §7.3.1: a recipient may replace folding white space by one SP.
        value = _FOLD_RE.sub(" ", value)
    if "\\" in value:
        value = _ESCAPE_RE.sub(r"\1", value)
    return value


def _scheme_at(value: str, pos: int) -> tuple[str, int] | None:
    """Return (scheme, position after it) when a challenge starts at ``pos``."""
    match = _SCHEME_RE.match(value, pos)
    if match is None:
        return None
    return match.group(1), match.end()


def _parse_params(value: str, pos: int, *, multi: bool) -> tuple[dict[str, str], int]:
    """Parse ``#auth-param`` from ``pos``.

    Returns the parameters and the position where parsing stopped: the end of the value,
    or (when ``multi``) the start of the next challenge after a comma.
    """
    params: dict[str, str] = {}
    end = len(value)
    pos = _skip_lws(value, pos)
    while pos < end:
        if value[pos] == ",":
            # RFC 2616 §2.1 / RFC 7230 §7: empty list elements are allowed and ignored.
            pos = _skip_lws(value, pos + 1)
            continue
        match = _PARAM_RE.match(value, pos)
        if match is None:
            if multi and _scheme_at(value, pos) is not None:
                return params, pos
            raise DigestError(f"malformed parameter at offset {pos}")
        name = match.group(1).lower()
        if name in params:
            raise DigestError(f"duplicate parameter {name!r}")
        quoted = match.group(2)
        params[name] = _unquote(quoted) if quoted is not None else match.group(3)
        pos = match.end()
        if pos < end and value[pos] != ",":
            raise DigestError(f"expected ',' at offset {pos}")
    return params, pos


def parse_digest(value: str) -> DigestParams:
    """Parse one ``Digest`` challenge or credentials header value.

    Accepts ``Authorization``, ``Proxy-Authorization``, ``WWW-Authenticate`` and
    ``Proxy-Authenticate`` values (RFC 7616 §3.3/§3.4): the scheme ``Digest``
    (case-insensitive) then comma-separated ``name=value`` pairs whose values are tokens
    or quoted strings with backslash escapes, LWS allowed around every element. Names
    are case-insensitive and stored lowercased; a repeated name is an error.

    Raises :class:`DigestError` on anything malformed, and never any other exception.
    """
    if not isinstance(value, str):
        raise DigestError("header value is not text")
    if value.startswith("Digest "):
        fast = _parse_digest_fast(value)
        if fast is not None:
            return fast
    return _parse_digest(value)


def _parse_digest(value: str) -> DigestParams:
    # The general parser, for every shape (and every error).
    head = _HEAD_RE.match(value)
    if head is None:
        raise DigestError("scheme is not Digest")
    # One findall over the whole value: a C loop instead of a Python one per parameter
    # (this runs for every authenticated REGISTER). Where no element matches, the
    # catch-all group takes the rest of the value, so nothing is skipped silently.
    params: dict[str, str] = {}
    for name, quoted, token, bad in _ITEM_RE.findall(value, head.end()):
        if bad:
            raise DigestError(f"malformed parameter near {bad[:20]!r}")
        if not name:
            continue  # an empty list element (RFC 2616 §2.1)
        key = name.lower()
        if key in params:
            raise DigestError(f"duplicate parameter {key!r}")
        params[key] = token or _unquote(quoted)
    if not params:
        raise DigestError("Digest without parameters")
    return DigestParams(params)


def _parse_digest_fast(value: str) -> DigestParams | None:
    # parse_digest's answer for the common shape, or None for the general loop.
    params: dict[str, str] = {}
    for name, quoted, token, stray in _FAST_ITEM_RE.findall(value, 7):
        if stray:
            return None
        key = name.lower()
        if key in params:
            return None
        params[key] = token or quoted
    if not params:
        return None
    return DigestParams(params)


def parse_challenges(value: str) -> list[DigestParams]:
    """Parse every ``Digest`` challenge of one ``WWW-Authenticate`` value.

    RFC 7235 §4.1 lets a server put several challenges in one header value
    (``Digest realm="a", nonce="1", Digest realm="a", nonce="2", algorithm=SHA-256``);
    challenges of other schemes (``Basic``, ``Bearer`` …) are skipped. Raises
    :class:`DigestError` when the value is malformed.
    """
    if not isinstance(value, str):
        raise DigestError("header value is not text")
    found: list[DigestParams] = []
    pos = _skip_lws(value, 0)
    end = len(value)
    while pos < end:
        if value[pos] == ",":
            pos = _skip_lws(value, pos + 1)
            continue
        scheme = _scheme_at(value, pos)
        if scheme is None:
            raise DigestError(f"malformed challenge at offset {pos}")
        name, pos = scheme
        if name.lower() != "digest":
            token68 = _TOKEN68_RE.match(value, pos)
            if token68 is not None and _PARAM_RE.match(value, pos) is None:
                pos = token68.end()
                continue
        params, pos = _parse_params(value, pos, multi=True)
        if name.lower() == "digest":
            if not params:
                raise DigestError("Digest without parameters")
            found.append(DigestParams(params))
    return found


# --------------------------------------------------------------------------- writing

_UNSAFE_IN_QUOTES = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _quote(value: str) -> str:
    """Return ``value`` as an RFC 3261 quoted-string."""
    if _UNSAFE_IN_QUOTES.search(value):
        # A CR or LF would split the header: refuse rather than emit an injection.
        raise DigestError("control character in a digest parameter")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_challenge(
    realm: str,
    nonce: str,
    algorithm: str = "MD5",
    *,
    stale: bool = False,
    opaque: str | None = None,
    qop: str = "auth",
) -> str:
    """Return one ``WWW-Authenticate`` / ``Proxy-Authenticate`` value.

    E.g. ``Digest realm="127.0.0.1", nonce="…", qop="auth", algorithm=MD5``. RFC 7616
    §3.7 wants one challenge per algorithm, most preferred first; the caller builds one
    value per algorithm in its configured order (spec REG-1: MD5 alone by default,
    because baresip 1.0, SIPp 3.6 and sipsak refuse a list that contains SHA-256).
    ``stale=True`` tells the client its credentials were right but the nonce expired
    (RFC 7616 §3.3), so it retries without asking the user.
    """
    head, tail = _challenge_frame(realm, algorithm, stale, opaque, qop)
    return f"{head}{_quote(nonce)}{tail}"


@functools.lru_cache(maxsize=64)
def _challenge_frame(
    realm: str, algorithm: str, stale: bool, opaque: str | None, qop: str
) -> tuple[str, str]:
    # Everything of a challenge but the nonce, which is new every time: a registrar
    # sends the same realm, qop and algorithm in every 401 (errors are not cached).
    alg = parse_algorithm(algorithm)
    head = f"Digest realm={_quote(realm)}, nonce="
    parts = [""]
    if qop:
        parts.append(f"qop={_quote(qop)}")
    parts.append(f"algorithm={alg.value}")
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    if stale:
        parts.append("stale=true")
    return head, ", ".join(parts)


# --------------------------------------------------------------------------- verifying


def _session_ha1(hash_hex: Callable[[bytes], str], ha1: str, nonce: str, cnonce: str) -> str:
    # RFC 7616 §3.4.2: for -sess, HA1 = H(H(user:realm:pass) ":" nonce ":" cnonce).
    return hash_hex(f"{ha1}:{nonce}:{cnonce}".encode())


def _ha2(
    hash_hex: Callable[[bytes], str], qop: str | None, method: str, uri: str, body: bytes
) -> str:
    # RFC 7616 §3.4.3: auth-int also covers the body, as H(entity-body).
    if qop is not None and qop.lower() == "auth-int":
        return hash_hex(f"{method}:{uri}:{hash_hex(body)}".encode())
    return hash_hex(f"{method}:{uri}".encode())


def verify(
    params: DigestParams,
    method: str,
    ha1: str,
    *,
    entity_body: bytes = b"",
    require_qop: bool = True,
) -> bool:
    """Check the ``response`` of credentials against the stored ``ha1`` (RFC 7616 §3.4.1).

    ``ha1`` is the stored lowercase-hex HA1 of the credentials' base algorithm (pick it
    with ``params.algorithm.base``); the password is never needed. With ``require_qop``
    (the default, spec REG-2) credentials without ``qop=auth``/``auth-int``, ``nc`` and
    ``cnonce`` are refused; with ``require_qop=False`` the RFC 2069 form (no qop) is
    accepted too. The nonce, the username and the ``uri`` (see :func:`digest_uri_matches`)
    are the caller's to check. The comparison is constant-time.
    """
    p = params.params
    raw_alg = p.get("algorithm")
    # Keyed by the lowercase token rather than by DigestAlgorithm: hashing an enum member
    # runs Python code, and this is the registrar's hot path.
    info = _HASH_BY_NAME.get(raw_alg.lower()) if raw_alg is not None else _MD5_INFO
    nonce = p.get("nonce")
    uri = p.get("uri")
    response = p.get("response")
    if info is None or nonce is None or uri is None or response is None:
        return False
    hash_hex, is_session = info
    qop = p.get("qop")
    cnonce = p.get("cnonce")
    nc = p.get("nc")
    if qop is not None:
        # RFC 7616 §3.4: with qop, nc (8LHEX) and cnonce are mandatory.
        if (
            qop.lower() not in ("auth", "auth-int")
            or nc is None
            or _HEX_RE.fullmatch(nc) is None
            or not cnonce
        ):
            return False
    elif require_qop:
        return False
    if is_session:
        if not cnonce:
            return False
        ha1 = _session_ha1(hash_hex, ha1, nonce, cnonce)
    if qop is None or qop == "auth":
        ha2 = hash_hex(f"{method}:{uri}".encode())
    else:
        ha2 = _ha2(hash_hex, qop, method, uri, entity_body)
    if qop is not None:
        expected = hash_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())
    else:
        # RFC 2069 compatibility (RFC 2617 §3.2.2.1).
        expected = hash_hex(f"{ha1}:{nonce}:{ha2}".encode())
    # compare_digest needs ASCII str; a non-ASCII response cannot be right anyway.
    if not response.isascii():
        return False
    return hmac.compare_digest(expected, response.lower())


# --------------------------------------------------------------------------- URI check

_SIP_URI_RE = re.compile(
    r"(?P<scheme>sips?):(?:(?P<user>[^@;?]*)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:;?\[\]]+)(?::(?P<port>[0-9]{1,5}))?(?:[;?].*)?",
    re.IGNORECASE | re.DOTALL,
)


def _sip_uri_key(uri: str) -> tuple[str, str | None, str, int] | None:
    """(scheme, user, host, port) of a SIP URI, port defaulted; None if not a SIP URI."""
    match = _SIP_URI_RE.fullmatch(uri.strip())
    if match is None:
        return None
    scheme = match.group("scheme").lower()
    host = match.group("host").lower()
    if host.startswith("["):
        try:
            host = "[" + ipaddress.IPv6Address(host[1:-1]).compressed + "]"
        except ValueError:
            return None
    port_text = match.group("port")
    # RFC 3261 §19.1.2: the default port is 5060 for sip and 5061 for sips.
    port = int(port_text) if port_text else (5061 if scheme == "sips" else 5060)
    return scheme, match.group("user"), host, port


def digest_uri_matches(params_uri: str, request_uri: str) -> bool:
    """Whether the credentials' ``uri`` names the Request-URI (RFC 7616 §3.4.6).

    Exact string equality first; otherwise both are compared as SIP URIs on scheme,
    user, host (case-insensitive) and port (absent = 5060/5061), ignoring parameters and
    headers. That leniency is what real phones need: SIPp puts ``sip:remote_ip:remote_port``
    in ``uri`` whatever the Request-URI looks like, others drop ``;transport=`` or the
    default port.
    """
    if params_uri == request_uri:
        return True
    left = _sip_uri_key(params_uri)
    return left is not None and left == _sip_uri_key(request_uri)


# --------------------------------------------------------------------------- client side

# RFC 7616 §3.7: the client uses the strongest algorithm it supports.
_PREFERENCE = {
    DigestAlgorithm.SHA256: 0,
    DigestAlgorithm.SHA256_SESS: 1,
    DigestAlgorithm.MD5: 2,
    DigestAlgorithm.MD5_SESS: 3,
}


def _client_qop(challenge: DigestParams) -> str | None:
    """The qop to answer with: "auth", else "auth-int", None for an RFC 2069 challenge."""
    if challenge.qop is None:
        return None
    options = challenge.qop_options
    if "auth" in options:
        return "auth"
    if "auth-int" in options:
        return "auth-int"
    raise DigestError(f"unsupported qop {challenge.qop!r}")


def choose_challenge(challenges: Iterable[DigestParams]) -> DigestParams:
    """Pick the challenge to answer: SHA-256 over MD5, first wins on a tie.

    Challenges with an unsupported algorithm or qop, or without realm and nonce, are
    skipped; :class:`DigestError` if none is left.
    """
    best: DigestParams | None = None
    best_rank = len(_PREFERENCE)
    for challenge in challenges:
        alg = challenge.algorithm
        if alg is None or challenge.realm is None or challenge.nonce is None:
            continue
        try:
            _client_qop(challenge)
        except DigestError:
            continue
        rank = _PREFERENCE[alg]
        if rank < best_rank:
            best, best_rank = challenge, rank
    if best is None:
        raise DigestError("no usable Digest challenge")
    return best


def build_authorization(
    challenge: DigestParams,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """Return the ``Authorization`` / ``Proxy-Authorization`` value answering ``challenge``.

    MD5, SHA-256 and their ``-sess`` variants; ``qop=auth`` when offered, else
    ``auth-int`` (over ``body``), else the RFC 2069 form. ``opaque`` is echoed
    (RFC 7616 §3.4). ``cnonce`` is the caller's random string (this core draws no
    randomness); ``nc`` counts the requests sent with this nonce, starting at 1.
    """
    alg = challenge.algorithm
    if alg is None:
        raise DigestError(f"unsupported digest algorithm {challenge.get('algorithm')!r}")
    realm = challenge.realm
    nonce = challenge.nonce
    if realm is None or nonce is None:
        raise DigestError("challenge without realm or nonce")
    qop = _client_qop(challenge)
    if not 0 < nc <= 0xFFFFFFFF:
        raise DigestError("nonce count out of range")
    hash_hex = _HASHES[alg]
    ha1 = hash_hex(f"{username}:{realm}:{password}".encode())
    if alg.is_session:
        ha1 = _session_ha1(hash_hex, ha1, nonce, cnonce)
    ha2 = _ha2(hash_hex, qop, method, uri, body)
    nc_text = f"{nc:08x}"
    if qop is not None:
        response = hash_hex(f"{ha1}:{nonce}:{nc_text}:{cnonce}:{qop}:{ha2}".encode())
    else:
        response = hash_hex(f"{ha1}:{nonce}:{ha2}".encode())
    parts = [
        f"Digest username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f'response="{response}"',
        f"algorithm={alg.value}",
    ]
    if qop is not None:
        parts += [f"cnonce={_quote(cnonce)}", f"qop={qop}", f"nc={nc_text}"]
    elif alg.is_session:
        parts.append(f"cnonce={_quote(cnonce)}")
    opaque = challenge.opaque
    if opaque is not None:
        parts.append(f"opaque={_quote(opaque)}")
    return ", ".join(parts)
