"""Digest authentication core: RFC vectors, SIP round trips, nonces, replay, fuzzing."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialtone.sip.digest import (
    DigestAlgorithm,
    DigestError,
    DigestParams,
    build_authorization,
    build_challenge,
    choose_challenge,
    compute_ha1,
    digest_uri_matches,
    parse_algorithm,
    parse_challenges,
    parse_digest,
    verify,
)
from dialtone.sip.nonce import NonceManager, NonceStatus

SECRET = b"0123456789abcdef0123456789abcdef"
REALM = "127.0.0.1"

# --------------------------------------------------------------------------- RFC vectors

RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa",\r\n'
    '                 realm="testrealm@host.com",\r\n'
    '                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n'
    '                 uri="/dir/index.html",\r\n'
    "                 qop=auth,\r\n"
    "                 nc=00000001,\r\n"
    '                 cnonce="0a4f113b",\r\n'
    '                 response="6629fae49393a05397450978507c4ef1",\r\n'
    '                 opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


def rfc7616_challenge(algorithm: str) -> str:
    """RFC 7616 §3.9.1 WWW-Authenticate for ``algorithm``."""
    return (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def rfc7616_authorization(algorithm: str) -> str:
    """RFC 7616 §3.9.1 Authorization for ``algorithm``."""
    return (
        'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", nc=00000001, '
        f'cnonce="{RFC7616_CNONCE}", qop=auth, response="{RFC7616_RESPONSES[algorithm]}", '
        f'opaque="{RFC7616_OPAQUE}"'
    )


def test_rfc2617_example_verifies() -> None:
    params = parse_digest(RFC2617_AUTHORIZATION)
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert verify(params, "GET", ha1)
    assert not verify(params, "GET", compute_ha1("Mufasa", "testrealm@host.com", "circle"))
    assert not verify(params, "POST", ha1)


def test_rfc2617_example_client_side() -> None:
    header = build_authorization(
        parse_digest(RFC2617_CHALLENGE),
        "GET",
        "/dir/index.html",
        "Mufasa",
        "Circle Of Life",
        cnonce="0a4f113b",
    )
    params = parse_digest(header)
    assert params.response == "6629fae49393a05397450978507c4ef1"
    assert params.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert params.qop == "auth"
    assert params.nc == "00000001"


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_examples(algorithm: str) -> None:
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    assert verify(parse_digest(rfc7616_authorization(algorithm)), "GET", ha1)

    challenge = parse_digest(rfc7616_challenge(algorithm))
    assert challenge.qop_options == ("auth", "auth-int")
    header = build_authorization(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life", cnonce=RFC7616_CNONCE
    )
    assert parse_digest(header).response == RFC7616_RESPONSES[algorithm]
    assert f'opaque="{RFC7616_OPAQUE}"' in header


def test_compute_ha1() -> None:
    assert (
        compute_ha1("alice", REALM, "secret") == hashlib.md5(b"alice:127.0.0.1:secret").hexdigest()
    )
    assert (
        compute_ha1("alice", REALM, "secret", "sha-256")
        == hashlib.sha256(b"alice:127.0.0.1:secret").hexdigest()
    )
    # The -sess variants store the HA1 of their base algorithm.
    assert compute_ha1("alice", REALM, "secret", "MD5-sess") == compute_ha1(
        "alice", REALM, "secret"
    )
    assert (
        compute_ha1("ålice", REALM, "sécret")
        == hashlib.md5("ålice:127.0.0.1:sécret".encode()).hexdigest()
    )
    with pytest.raises(DigestError, match="unsupported"):
        compute_ha1("alice", REALM, "secret", "SHA-512-256")


def test_parse_algorithm() -> None:
    assert parse_algorithm("md5") is DigestAlgorithm.MD5
    assert parse_algorithm("SHA-256-SESS") is DigestAlgorithm.SHA256_SESS
    assert DigestAlgorithm.SHA256_SESS.base is DigestAlgorithm.SHA256
    assert DigestAlgorithm.MD5_SESS.is_session
    assert not DigestAlgorithm.MD5.is_session
    with pytest.raises(DigestError):
        parse_algorithm("SHA-1")


# --------------------------------------------------------------------------- SIP round trip


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
def test_register_round_trip(algorithm: str) -> None:
    """Server challenges, client answers, server verifies: the whole REG-1/REG-2 path."""
    nonces = NonceManager(SECRET)
    now = 1_700_000_000.0
    nonce = nonces.issue(now, realm=REALM)
    www_authenticate = build_challenge(REALM, nonce, algorithm, opaque="abc")
    challenge = choose_challenge([parse_digest(www_authenticate)])

    authorization = build_authorization(
        challenge,
        "REGISTER",
        "sip:127.0.0.1:5060",
        "alice",
        "secret",
        cnonce="6b8b4567",
    )
    params = parse_digest(authorization)
    assert params.username == "alice"
    assert params.realm == REALM
    assert params.opaque == "abc"
    assert params.algorithm is not None
    ha1 = compute_ha1("alice", REALM, "secret", params.algorithm.base)

    assert nonces.check(params.nonce, now + 1, realm=REALM) is NonceStatus.VALID
    assert verify(params, "REGISTER", ha1)
    assert nonces.accept_nc(params.nonce, params.nc_value)
    assert digest_uri_matches(params.uri or "", "sip:127.0.0.1")
    # The same Authorization again is a replay.
    assert not nonces.accept_nc(params.nonce, params.nc_value)
    assert not verify(params, "REGISTER", compute_ha1("alice", REALM, "wrong", algorithm))


def test_register_refresh_with_next_nc() -> None:
    nonces = NonceManager(SECRET)
    nonce = nonces.issue(0.0, realm=REALM)
    challenge = parse_digest(build_challenge(REALM, nonce))
    ha1 = compute_ha1("alice", REALM, "secret")
    for nc in (1, 2, 5):
        header = build_authorization(
            challenge, "REGISTER", "sip:127.0.0.1", "alice", "secret", cnonce="x", nc=nc
        )
        params = parse_digest(header)
        assert params.nc == f"{nc:08x}"
        assert verify(params, "REGISTER", ha1)
        assert nonces.accept_nc(nonce, params.nc_value)
    assert not nonces.accept_nc(nonce, 5)
    assert not nonces.accept_nc(nonce, 3)


def test_auth_int_covers_the_body() -> None:
    challenge = parse_digest(build_challenge(REALM, "n", qop="auth-int"))
    body = b"v=0\r\n"
    header = build_authorization(
        challenge, "INVITE", "sip:bob@127.0.0.1", "alice", "secret", cnonce="c", body=body
    )
    params = parse_digest(header)
    assert params.qop == "auth-int"
    ha1 = compute_ha1("alice", REALM, "secret")
    assert verify(params, "INVITE", ha1, entity_body=body)
    assert not verify(params, "INVITE", ha1, entity_body=b"v=1\r\n")


def test_rfc2069_challenge_without_qop() -> None:
    challenge = parse_digest(f'Digest realm="{REALM}", nonce="abc"')
    header = build_authorization(
        challenge, "INVITE", "sip:bob@example.com", "alice", "pw", cnonce="c"
    )
    params = parse_digest(header)
    assert params.qop is None
    assert params.nc is None
    assert "cnonce" not in params.params
    ha1 = compute_ha1("alice", REALM, "pw")
    # Spec REG-2 requires qop=auth: refused by default, accepted when asked for.
    assert not verify(params, "INVITE", ha1)
    assert verify(params, "INVITE", ha1, require_qop=False)


# --------------------------------------------------------------------------- verify edge cases


def _good_params(**changes: str | None) -> DigestParams:
    header = build_authorization(
        parse_digest(build_challenge(REALM, "nonce")),
        "REGISTER",
        "sip:127.0.0.1",
        "alice",
        "secret",
        cnonce="cn",
    )
    params = dict(parse_digest(header).params)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return DigestParams(params)


HA1 = compute_ha1("alice", REALM, "secret")


def test_verify_accepts_uppercase_response() -> None:
    params = _good_params()
    assert verify(params, "REGISTER", HA1)
    assert verify(_good_params(response=(params.response or "").upper()), "REGISTER", HA1)


@pytest.mark.parametrize(
    "changes",
    [
        {"qop": None},
        {"nc": None},
        {"nc": "xyz"},
        {"nc": "000000001"},
        {"cnonce": None},
        {"cnonce": ""},
        {"qop": "auth-conf"},
        {"response": None},
        {"response": "ß" * 32},
        {"nonce": None},
        {"uri": None},
        {"uri": "sip:other"},
        {"algorithm": "SHA-512-256"},
        {"algorithm": "SHA-256"},
        {"nonce": "other"},
    ],
)
def test_verify_rejects(changes: dict[str, str | None]) -> None:
    assert not verify(_good_params(**changes), "REGISTER", HA1)


# --------------------------------------------------------------------------- nonces


def test_nonce_valid_until_lifetime_then_stale() -> None:
    nonces = NonceManager(SECRET, lifetime=300.0)
    nonce = nonces.issue(1000.0)
    assert nonces.check(nonce, 1000.0) is NonceStatus.VALID
    assert nonces.check(nonce, 1300.0) is NonceStatus.VALID
    assert nonces.check(nonce, 1300.001) is NonceStatus.STALE
    assert nonces.check(nonce, 1_000_000.0) is NonceStatus.STALE
    # Clock skew between nodes is tolerated a little; far in the future it is stale.
    assert nonces.check(nonce, 996.0) is NonceStatus.VALID
    assert nonces.check(nonce, 900.0) is NonceStatus.STALE
    assert nonces.check(nonce, float("nan")) is NonceStatus.STALE
    assert nonces.lifetime == 300.0


def test_nonces_are_unique_and_quote_safe() -> None:
    nonces = NonceManager(SECRET)
    issued = {nonces.issue(5.0) for _ in range(1000)}
    assert len(issued) == 1000
    assert all(len(n) == 44 and '"' not in n and "\\" not in n for n in issued)


def test_forged_nonce_is_invalid() -> None:
    nonces = NonceManager(SECRET)
    nonce = nonces.issue(1000.0)
    # Flip one character of the MAC, then of the timestamp (pushing the nonce's age).
    for index in (len(nonce) - 2, 3):
        flipped = "A" if nonce[index] != "A" else "B"
        forged = nonce[:index] + flipped + nonce[index + 1 :]
        assert nonces.check(forged, 1000.0) is NonceStatus.INVALID
    assert nonces.check(None, 1000.0) is NonceStatus.INVALID
    assert nonces.check("", 1000.0) is NonceStatus.INVALID
    assert nonces.check(nonce + "A", 1000.0) is NonceStatus.INVALID
    assert nonces.check("!" * 44, 1000.0) is NonceStatus.INVALID
    assert nonces.check("é" * 44, 1000.0) is NonceStatus.INVALID


def test_nonce_from_another_server_or_realm_is_invalid() -> None:
    ours = NonceManager(SECRET)
    theirs = NonceManager(b"another server's secret, 32 byte")
    nonce = theirs.issue(1000.0, realm=REALM)
    assert theirs.check(nonce, 1000.0, realm=REALM) is NonceStatus.VALID
    assert ours.check(nonce, 1000.0, realm=REALM) is NonceStatus.INVALID
    # Nonces are bound to the realm they were issued for.
    assert theirs.check(nonce, 1000.0, realm="example.com") is NonceStatus.INVALID
    # A second manager with the same secret (another node, a restart) accepts it.
    twin = NonceManager(b"another server's secret, 32 byte")
    assert twin.check(nonce, 1000.0, realm=REALM) is NonceStatus.VALID


def test_counter_start_makes_nonces_reproducible() -> None:
    first = NonceManager(SECRET, counter_start=7).issue(1.0, realm=REALM)
    again = NonceManager(SECRET, counter_start=7).issue(1.0, realm=REALM)
    assert first == again
    assert NonceManager(SECRET, counter_start=8).issue(1.0, realm=REALM) != first


def test_long_secret_and_short_secret() -> None:
    nonces = NonceManager(b"s" * 200)
    assert nonces.check(nonces.issue(1.0), 1.0) is NonceStatus.VALID
    with pytest.raises(ValueError, match="16 bytes"):
        NonceManager(b"short")
    with pytest.raises(ValueError, match="lifetime"):
        NonceManager(SECRET, lifetime=0)


@given(st.text(max_size=80))
def test_check_never_raises(garbage: str) -> None:
    assert NonceManager(SECRET).check(garbage, 0.0) is NonceStatus.INVALID


def test_accept_nc_rejects_replays() -> None:
    nonces = NonceManager(SECRET)
    a = nonces.issue(0.0)
    b = nonces.issue(0.0)
    assert nonces.accept_nc(a, 1)
    assert not nonces.accept_nc(a, 1)
    assert nonces.accept_nc(b, 1)  # counts are per nonce
    assert nonces.accept_nc(a, 3)  # gaps are fine (RFC 7616 §3.4.2: greater, not next)
    assert not nonces.accept_nc(a, 2)
    assert nonces.accept_nc(a, 0xFFFFFFFF)
    assert not nonces.accept_nc(b, 0)
    assert not nonces.accept_nc(b, None)
    assert not nonces.accept_nc(None, 2)
    assert not nonces.accept_nc("garbage", 1)
    assert not nonces.accept_nc("é" * 44, 1)
    assert not nonces.accept_nc("!" * 44, 1)
    # A nonce with a NaN timestamp (never VALID) is not tracked: it would block prune().
    nan_nonce = NonceManager(SECRET).issue(float("nan"))
    assert not nonces.accept_nc(nan_nonce, 1)
    assert len(nonces) == 2


def test_prune_forgets_only_expired_nonces() -> None:
    nonces = NonceManager(SECRET, lifetime=300.0)
    early = nonces.issue(0.0)
    late = nonces.issue(200.0)
    assert nonces.accept_nc(early, 1)
    assert nonces.accept_nc(late, 1)
    nonces.prune(300.0)  # early expires at 300.0: still VALID at exactly 300
    assert len(nonces) == 2
    assert not nonces.accept_nc(early, 1)
    nonces.prune(300.5)
    assert len(nonces) == 1
    assert nonces.check(early, 300.5) is NonceStatus.STALE  # so a replay cannot pass
    assert not nonces.accept_nc(late, 1)
    nonces.prune(10_000.0)
    assert len(nonces) == 0


def test_memory_stays_bounded() -> None:
    nonces = NonceManager(SECRET, lifetime=10.0)
    for second in range(1000):
        now = float(second)
        assert nonces.accept_nc(nonces.issue(now), 1)
        nonces.prune(now)
        assert len(nonces) <= 11


# --------------------------------------------------------------------------- challenges


def test_build_challenge_default_shape() -> None:
    assert build_challenge(REALM, "abc") == (
        'Digest realm="127.0.0.1", nonce="abc", qop="auth", algorithm=MD5'
    )
    assert build_challenge(REALM, "abc", "sha-256", stale=True, opaque="o") == (
        'Digest realm="127.0.0.1", nonce="abc", qop="auth", algorithm=SHA-256, '
        'opaque="o", stale=true'
    )
    challenge = parse_digest(build_challenge('we "quote"\\', "n", stale=True))
    assert challenge.realm == 'we "quote"\\'
    assert challenge.stale
    with pytest.raises(DigestError):
        build_challenge("evil\r\nVia: x", "n")
    with pytest.raises(DigestError):
        build_challenge(REALM, "n", "SHA-1")


def test_choose_challenge_prefers_sha256() -> None:
    md5 = parse_digest(build_challenge(REALM, "1", "MD5"))
    sha = parse_digest(build_challenge(REALM, "2", "SHA-256"))
    unknown = parse_digest(build_challenge(REALM, "3").replace("MD5", "SHA-512-256"))
    conf = parse_digest(f'Digest realm="{REALM}", nonce="4", qop="auth-conf", algorithm=SHA-256')
    no_nonce = parse_digest(f'Digest realm="{REALM}", algorithm=SHA-256')
    assert choose_challenge([md5, sha]) is sha
    assert choose_challenge([unknown, conf, no_nonce, md5, sha]) is sha
    assert choose_challenge([unknown, md5]) is md5
    with pytest.raises(DigestError, match="no usable"):
        choose_challenge([unknown, conf, no_nonce])
    with pytest.raises(DigestError):
        choose_challenge([])


@pytest.mark.parametrize(
    ("challenge", "nc"),
    [
        ('Digest realm="r", nonce="n", algorithm=SHA-1', 1),
        ('Digest realm="r", nonce="n", qop="auth-conf"', 1),
        ('Digest realm="r"', 1),
        ('Digest nonce="n"', 1),
        ('Digest realm="r", nonce="n"', 0),
        ('Digest realm="r", nonce="n"', 1 << 32),
    ],
)
def test_build_authorization_errors(challenge: str, nc: int) -> None:
    with pytest.raises(DigestError):
        build_authorization(parse_digest(challenge), "INVITE", "sip:x", "u", "p", cnonce="c", nc=nc)


def test_parse_challenges_in_one_value() -> None:
    value = (
        'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple", '
        'Digest realm="a", nonce="1", Bearer abc==, '
        'Digest realm="a", nonce="2", algorithm=SHA-256'
    )
    challenges = parse_challenges(value)
    assert [c.nonce for c in challenges] == ["1", "2"]
    assert choose_challenge(challenges).nonce == "2"
    assert parse_challenges(build_challenge(REALM, "x"))[0].nonce == "x"
    assert parse_challenges("Basic realm=x") == []
    for bad in ['Digest realm="a" nonce="b"', "Digest", "Digest realm=", '"x"', "Digest a=1, a=2"]:
        with pytest.raises(DigestError):
            parse_challenges(bad)


# --------------------------------------------------------------------------- parsing


def test_parse_is_case_and_space_insensitive() -> None:
    params = parse_digest(
        '  dIgEsT   USERNAME = "bob" ,, Realm=example.com,\r\n\tNonce="a\\"b\\\\c"  ,'
        ' qop = auth , uri="sip:a@b" , ALGORITHM=md5 , x-custom="1, 2"'
    )
    assert params.username == "bob"
    assert params.realm == "example.com"
    assert params.nonce == 'a"b\\c'
    assert params.qop == "auth"
    assert params.algorithm is DigestAlgorithm.MD5
    assert params.get("X-Custom") == "1, 2"
    assert params.get("missing", "d") == "d"


def test_parse_defaults_and_properties() -> None:
    params = parse_digest('Digest realm="r", nonce="n", algorithm=whatever, stale=TRUE, nc=1f')
    assert params.algorithm is None  # unsupported
    assert params.stale
    assert params.nc_value == 0x1F
    assert parse_digest('Digest realm="r"').algorithm is DigestAlgorithm.MD5  # RFC 7616 §3.3
    assert not parse_digest('Digest realm="r"').stale
    assert parse_digest("Digest nc=+1").nc_value is None
    assert parse_digest('Digest realm=""').realm == ""
    folded = parse_digest('Digest realm="a\r\n b"')
    assert folded.realm == "a b"


def test_extended_username() -> None:
    # RFC 7616 §3.4.4 username* (RFC 5987 encoding), e.g. for non-ASCII names.
    params = parse_digest("Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=r")
    assert params.username == "Jäsøn Doe"
    assert parse_digest("Digest username*=bogus, realm=r").username is None
    assert parse_digest("Digest username*=nope''%FF, realm=r").username is None
    assert parse_digest("Digest realm=r").username is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "Basic dXNlcjpwYXNz",
        "Digest",
        "Digest ",
        "Digestrealm=x",
        "Digest realm",
        "Digest realm=",
        'Digest realm="unterminated',
        'Digest realm="a" nonce="b"',
        "Digest realm=a b",
        "Digest realm=x, realm=y",
        "Digest Realm=x, realm=y",
        "Digest uri=sip:host",
        "Digest =x",
        'Digest realm="a\rb"',
        "Digeſt realm=x",  # U+017F lowercases to 's' in some engines: not Digest
        "Digest realm=x\r\n",
    ],
)
def test_parse_rejects(value: str) -> None:
    with pytest.raises(DigestError):
        parse_digest(value)


@pytest.mark.parametrize(
    "value",
    [
        "Digest " + "a" * 60_000,
        'Digest x="' + "a" * 60_000,
        'Digest a="' + "\\x" * 30_000,
        "Digest " + "a=1," * 10_000 + " x",
        "Digest a" * 10_000,
    ],
)
def test_hostile_lengths_stay_linear(value: str) -> None:
    # Regression: a one-character catch-all made findall quadratic (minutes on 60 kB).
    for parser in (parse_digest, parse_challenges):
        with contextlib.suppress(DigestError):
            parser(value)


def test_parse_rejects_non_text() -> None:
    with pytest.raises(DigestError):
        parse_digest(b"Digest realm=x")  # type: ignore[arg-type]
    with pytest.raises(DigestError):
        parse_challenges(None)  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_parse_never_raises_anything_else(value: str) -> None:
    for parser in (parse_digest, parse_challenges):
        with contextlib.suppress(DigestError):
            parser(value)


_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9\-_]{0,10}", fullmatch=True)
_QUOTABLE = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"), max_size=20
)


@given(
    st.sampled_from(["Digest ", "digest ", "Digest\t", "DIGEST  "]),
    st.dictionaries(_NAMES.map(str.lower), _QUOTABLE, min_size=1, max_size=6),
)
def test_parse_round_trips_quoted_values(scheme: str, params: dict[str, str]) -> None:
    def quote(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    value = scheme + " ,\t".join(f"{n}={quote(v)}" for n, v in params.items())
    assert parse_digest(value).params == params


@given(st.text(st.sampled_from('Digest ,=",\\ \t\r\nrealm=x"aé'), max_size=60))
def test_parse_near_miss_fuzz(value: str) -> None:
    # A small alphabet hits the structure far more often than arbitrary text.
    try:
        parsed = parse_digest(value)
    except DigestError:
        return
    assert parsed.params


# --------------------------------------------------------------------------- digest-uri


@pytest.mark.parametrize(
    ("params_uri", "request_uri", "expected"),
    [
        ("sip:127.0.0.1:5060", "sip:127.0.0.1:5060", True),
        ("sip:127.0.0.1:5060", "sip:127.0.0.1", True),  # SIPp: sip:remote_ip:remote_port
        ("sip:127.0.0.1", "sip:127.0.0.1:5060;transport=udp", True),
        ("sip:alice@Example.COM;transport=tcp", "sip:alice@example.com", True),
        ("sips:example.com", "sips:example.com:5061", True),
        ("sip:[::1]", "sip:[0:0::1]:5060", True),
        ("sip:bob@127.0.0.1?subject=x", "sip:bob@127.0.0.1", True),
        ("sip:127.0.0.1:5062", "sip:127.0.0.1", False),
        ("sip:alice@127.0.0.1", "sip:bob@127.0.0.1", False),
        ("sip:alice@127.0.0.1", "sip:127.0.0.1", False),
        ("sip:127.0.0.1", "sips:127.0.0.1", False),
        ("sip:example.com", "sip:127.0.0.1", False),
        ("tel:+15551234", "tel:+15551234", True),
        ("tel:+15551234", "tel:+15551235", False),
        ("garbage", "sip:127.0.0.1", False),
        ("sip:[zz]", "sip:[zz]:5060", False),
    ],
)
def test_digest_uri_matches(params_uri: str, request_uri: str, expected: bool) -> None:
    assert digest_uri_matches(params_uri, request_uri) is expected
