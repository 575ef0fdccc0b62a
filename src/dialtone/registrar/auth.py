"""Digest authentication of requests from Clients (REG-1, REG-2, RTE-1), kept synchronous.

The registrar and the INVITE router both challenge Clients; this module owns the nonce
manager, the credential cache (login → HA1s, loaded from storage and updated by the API)
and the failure throttle, so both get the same behaviour: MD5 alone by default, one
challenge per configured algorithm, ``stale=true`` for expired nonces, ``403`` for a
wrong password, an unknown user or a username that is not the From/To user (no user
enumeration), and ``403`` for a replayed nonce count.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from dialtone.registrar.throttle import AuthThrottle
from dialtone.sip.digest import (
    DigestError,
    DigestParams,
    build_challenge,
    digest_uri_matches,
    parse_digest,
    verify,
)
from dialtone.sip.message import Request
from dialtone.sip.nonce import NonceManager, NonceStatus


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the server keeps of a Client's password: HA1 per algorithm, for one realm."""

    client_sid: str
    account_sid: str
    login: str
    ha1_md5: str
    ha1_sha256: str
    realm: str

    def ha1(self, algorithm: str) -> str:
        """The HA1 for ``MD5``/``SHA-256`` (and their ``-sess`` forms)."""
        return self.ha1_sha256 if algorithm.upper().startswith("SHA-256") else self.ha1_md5


class Verdict(Enum):
    """The outcome of checking a request's credentials."""

    OK = "ok"
    CHALLENGE = "challenge"  # no usable credentials: 401/407 with a fresh nonce
    STALE = "stale"  # right credentials, expired nonce: 401/407 with stale=true
    FORBIDDEN = "forbidden"  # wrong password, unknown user, replay: 403
    BLOCKED = "blocked"  # too many failures from this address: 403 without checking
    MALFORMED = "malformed"  # unparseable credentials: 400


@dataclass(frozen=True, slots=True)
class AuthResult:
    """A verdict and, when OK, whose credentials they were."""

    verdict: Verdict
    credentials: Credentials | None = None


# A dummy HA1 so that an unknown user costs the same hash work as a known one.
_DUMMY = Credentials("", "", "", "0" * 32, "0" * 64, "")

# The verdicts without credentials, built once (they are immutable); the enum members
# as globals (reading ``Verdict.OK`` goes through the enum metaclass).
_OK = Verdict.OK
_CHALLENGE = AuthResult(Verdict.CHALLENGE)
_STALE = AuthResult(Verdict.STALE)
_FORBIDDEN = AuthResult(Verdict.FORBIDDEN)
_BLOCKED = AuthResult(Verdict.BLOCKED)
_MALFORMED = AuthResult(Verdict.MALFORMED)
_INVALID, _NONCE_STALE = NonceStatus.INVALID, NonceStatus.STALE


class Authenticator:
    """Challenges and verifies digest credentials against the Client credential cache."""

    def __init__(
        self,
        realm: str,
        algorithms: Sequence[str] = ("MD5",),
        *,
        throttle: AuthThrottle | None = None,
        nonce_lifetime: float = 300.0,
    ) -> None:
        self.realm = realm
        self.algorithms = tuple(algorithms)
        self.throttle = throttle or AuthThrottle()
        self.nonces = NonceManager(secrets.token_bytes(32), lifetime=nonce_lifetime)
        self._by_login: dict[str, Credentials] = {}
        self._login_of: dict[str, str] = {}

    # -- credential cache ------------------------------------------------------------

    def load(self, credentials: Iterable[Credentials]) -> None:
        """Replace the whole cache (at start)."""
        self._by_login.clear()
        self._login_of.clear()
        for item in credentials:
            self.put(item)

    def put(self, item: Credentials) -> None:
        """Add or replace one Client's credentials."""
        self.remove(item.client_sid)
        self._by_login[item.login] = item
        self._login_of[item.client_sid] = item.login

    def remove(self, client_sid: str) -> None:
        """Forget a Client."""
        login = self._login_of.pop(client_sid, None)
        if login is not None:
            self._by_login.pop(login, None)

    def lookup(self, login: str) -> Credentials | None:
        """The credentials of the Client with this Login."""
        return self._by_login.get(login)

    # -- challenge and verify ----------------------------------------------------------

    def challenges(self, now: float, *, stale: bool = False) -> list[str]:
        """One ``WWW-Authenticate``/``Proxy-Authenticate`` value per configured algorithm."""
        nonce = self.nonces.issue(now, realm=self.realm)
        return [build_challenge(self.realm, nonce, alg, stale=stale) for alg in self.algorithms]

    def check(
        self,
        request: Request,
        header: str,
        expected_user: str | None,
        source_host: str,
        now: float,
    ) -> AuthResult:
        """Verify the ``header`` (Authorization or Proxy-Authorization) of ``request``.

        ``expected_user`` is the identity the request claims (To user for REGISTER, From
        user for INVITE); a username other than it is refused like a wrong password.
        """
        values = request.headers.get_all(header)
        if not values:
            return _CHALLENGE
        if self.throttle.blocked(source_host, now):
            return _BLOCKED
        params = self._ours(values)
        if params is None:
            return _MALFORMED if values else _CHALLENGE
        nonce = params.nonce
        if params.realm != self.realm or not nonce:
            return _CHALLENGE
        status = self.nonces.check(nonce, now, realm=self.realm)
        if status is _INVALID:
            return _CHALLENGE
        algorithm = (params.get("algorithm") or "MD5").upper()
        if algorithm.removesuffix("-SESS") not in self.algorithms:
            return _CHALLENGE
        username = params.username
        found = self._by_login.get(username or "")
        candidate = found or _DUMMY
        right = verify(params, request.method, candidate.ha1(algorithm))
        uri = params.uri
        uri_ok = uri is not None and digest_uri_matches(uri, request.uri)
        user_ok = found is not None and username == expected_user
        if not (right and uri_ok and user_ok):
            self.throttle.failure(source_host, now)
            return _FORBIDDEN
        if status is _NONCE_STALE:
            return _STALE
        if not self.nonces.accept_nc(nonce, params.nc_value):
            self.throttle.failure(source_host, now)
            return _FORBIDDEN
        return AuthResult(_OK, found)

    def _ours(self, values: list[str]) -> DigestParams | None:
        """The credentials for our realm among possibly several headers (one per realm)."""
        if len(values) == 1:  # the usual case: that one, whatever its realm
            try:
                return parse_digest(values[0])
            except DigestError:
                return None
        parsed: list[DigestParams] = []
        for value in values:
            try:
                parsed.append(parse_digest(value))
            except DigestError:
                continue
        for params in parsed:
            if params.realm == self.realm:
                return params
        return parsed[0] if parsed else None

    def prune(self, now: float) -> None:
        """Housekeeping: expired nonce counts and idle throttle entries."""
        self.nonces.prune(now)
        self.throttle.prune(now)
