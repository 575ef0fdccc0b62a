"""REGISTER handling end to end over parsed messages and real digest (REG-1..REG-5)."""

from __future__ import annotations

import secrets

import pytest

from dialtone.registrar.auth import Authenticator, Credentials
from dialtone.registrar.location import Location
from dialtone.registrar.service import Registrar
from dialtone.registrar.throttle import AuthThrottle
from dialtone.sip.digest import build_authorization, compute_ha1, parse_challenges
from dialtone.sip.events import Peer
from dialtone.sip.message import Request, Response, parse_message

REALM = "127.0.0.1"
PEER = Peer("udp", "127.0.0.1", 5072)


def register_bytes(
    user: str = "alice",
    *,
    call_id: str = "call-1",
    cseq: int = 1,
    contact: str | None = "<sip:alice@127.0.0.1:5072>",
    expires: int | None = 3600,
    authorization: str | None = None,
    domain: str = REALM,
    extra: str = "",
) -> Request:
    lines = [
        f"REGISTER sip:{domain} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bK{secrets.token_hex(4)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag=f1",
        f"To: <sip:{user}@{domain}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    if extra:
        lines.append(extra)
    lines += ["Content-Length: 0", "", ""]
    message = parse_message("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


class Harness:
    def __init__(self, algorithms: tuple[str, ...] = ("MD5",)) -> None:
        self.auth = Authenticator(REALM, algorithms, throttle=AuthThrottle(limit=5))
        self.auth.put(
            Credentials(
                "CLalice",
                "AC1",
                "alice",
                compute_ha1("alice", REALM, "secret", "MD5"),
                compute_ha1("alice", REALM, "secret", "SHA-256"),
                REALM,
            )
        )
        self.location = Location()
        self.changed: list[str] = []
        self.registrar = Registrar(
            domain=REALM,
            local_hosts={"127.0.0.1"},
            auth=self.auth,
            location=self.location,
            on_change=self.changed.append,
        )
        self.mono = 100.0
        self.wall = 1_700_000_000.0
        self.nc = 0

    def send(self, request: Request, peer: Peer = PEER) -> Response:
        return self.registrar.register(request, peer, self.mono, self.wall)

    def authorized(
        self, password: str = "secret", username: str = "alice", **kwargs: object
    ) -> Response:
        """REGISTER → 401 → REGISTER with credentials; returns the second answer."""
        first = self.send(register_bytes(**kwargs))  # type: ignore[arg-type]
        assert first.status == 401
        challenge = parse_challenges(first.headers.get("WWW-Authenticate") or "")[0]
        self.nc += 1
        value = build_authorization(
            challenge,
            "REGISTER",
            f"sip:{REALM}",
            username,
            password,
            cnonce=secrets.token_hex(4),
            nc=self.nc,
        )
        cseq = int(kwargs.pop("cseq", 1)) + 1  # type: ignore[call-overload]
        return self.send(register_bytes(authorization=value, cseq=cseq, **kwargs))  # type: ignore[arg-type]


def test_challenge_is_md5_alone_by_default() -> None:
    h = Harness()
    response = h.send(register_bytes())
    assert response.status == 401
    values = response.headers.get_all("WWW-Authenticate")
    assert len(values) == 1
    assert 'realm="127.0.0.1"' in values[0] and 'qop="auth"' in values[0]
    assert "algorithm=MD5" in values[0]
    assert response.to.tag


def test_sha256_is_offered_only_when_enabled_in_order() -> None:
    h = Harness(("SHA-256", "MD5"))
    values = h.send(register_bytes()).headers.get_all("WWW-Authenticate")
    assert ["SHA-256" in values[0], "MD5" in values[1]] == [True, True]
    assert h.authorized().status == 200  # answered with the first (SHA-256) challenge


def test_register_ok_lists_bindings_with_expires() -> None:
    h = Harness()
    response = h.authorized()
    assert response.status == 200
    assert response.headers.get_all("Contact") == ["<sip:alice@127.0.0.1:5072>;expires=3600"]
    assert h.changed == ["CLalice"]
    binding = h.location.bindings("CLalice", h.wall)[0]
    assert (binding.transport, binding.source_host, binding.source_port) == (
        "udp",
        "127.0.0.1",
        5072,
    )


@pytest.mark.parametrize(
    ("password", "username"), [("wrong", "alice"), ("secret", "mallory"), ("x", "nobody")]
)
def test_wrong_password_unknown_user_and_other_username_are_all_403(
    password: str, username: str
) -> None:
    h = Harness()
    response = h.authorized(password=password, username=username)
    assert response.status == 403
    assert h.location.count() == 0


def test_expiry_rules() -> None:
    h = Harness()
    brief = h.authorized(expires=30)
    assert brief.status == 423 and brief.headers.get("Min-Expires") == "60"
    clamped = h.authorized(expires=7200, call_id="c2")
    assert clamped.headers.get_all("Contact") == ["<sip:alice@127.0.0.1:5072>;expires=3600"]
    param = h.authorized(contact="<sip:alice@127.0.0.1:5074>;expires=120", call_id="c3")
    assert "<sip:alice@127.0.0.1:5074>;expires=120" in param.headers.get_all("Contact")


def test_unregister_one_and_wildcard() -> None:
    h = Harness()
    h.authorized(call_id="d1")
    h.authorized(call_id="d2", contact="<sip:alice@127.0.0.1:5074>")
    assert h.location.count() == 2
    gone = h.authorized(call_id="d1", cseq=5, expires=0)
    assert gone.headers.get_all("Contact") == ["<sip:alice@127.0.0.1:5074>;expires=3600"]
    wild = h.authorized(call_id="d3", contact="*", expires=0)
    assert wild.status == 200 and wild.headers.get_all("Contact") == []
    bad = h.authorized(call_id="d4", contact="*", expires=60)
    assert bad.status == 400


def test_out_of_order_cseq_is_500_and_changes_nothing() -> None:
    h = Harness()
    assert h.authorized(call_id="x", cseq=10).status == 200
    assert h.authorized(call_id="x", cseq=5, expires=0).status == 500
    assert h.location.count() == 1


def test_foreign_domain_is_403() -> None:
    h = Harness()
    assert h.send(register_bytes(domain="example.com")).status == 403


def test_nonce_count_replay_is_403() -> None:
    h = Harness()
    first = h.send(register_bytes())
    challenge = parse_challenges(first.headers.get("WWW-Authenticate") or "")[0]
    value = build_authorization(
        challenge, "REGISTER", f"sip:{REALM}", "alice", "secret", cnonce="abc", nc=1
    )
    assert h.send(register_bytes(authorization=value, cseq=2)).status == 200
    assert h.send(register_bytes(authorization=value, cseq=3)).status == 403


def test_expired_nonce_gets_stale_true() -> None:
    h = Harness()
    first = h.send(register_bytes())
    challenge = parse_challenges(first.headers.get("WWW-Authenticate") or "")[0]
    value = build_authorization(
        challenge, "REGISTER", f"sip:{REALM}", "alice", "secret", cnonce="abc", nc=1
    )
    h.mono += 301
    response = h.send(register_bytes(authorization=value, cseq=2))
    assert response.status == 401
    assert "stale=true" in (response.headers.get("WWW-Authenticate") or "")


def test_repeated_failures_block_that_source_only() -> None:
    h = Harness()
    for _ in range(6):
        h.authorized(password="wrong")
    assert h.auth.throttle.blocked("127.0.0.1", h.mono)
    other = Peer("udp", "127.0.0.2", 5072)
    first = h.send(register_bytes(), other)
    challenge = parse_challenges(first.headers.get("WWW-Authenticate") or "")[0]
    value = build_authorization(
        challenge, "REGISTER", f"sip:{REALM}", "alice", "secret", cnonce="z", nc=1
    )
    assert h.send(register_bytes(authorization=value, cseq=2), other).status == 200
    # the blocked source gets 403 even with the right password
    assert h.authorized().status == 403
