"""Headers, Request/Response, parse_message, to_bytes, make_response, errors, status."""

from __future__ import annotations

import pytest

from dialtone.sip.errors import SipError, SipParseError, status_for_error
from dialtone.sip.headers import WILDCARD, CSeq
from dialtone.sip.message import (
    MAX_MESSAGE_SIZE,
    Headers,
    Request,
    Response,
    is_answerable,
    make_response,
    parse_message,
)
from dialtone.sip.status import REASON_PHRASES, reason_phrase


def sip(*lines: str, body: str = "") -> bytes:
    """Join header lines with CRLF, add the blank line and the body."""
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


REGISTER = sip(
    "REGISTER sip:example.com SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds7;rport",
    "Max-Forwards: 70",
    "To: Bob <sip:bob@example.com>",
    "From: Bob <sip:bob@example.com>;tag=456248",
    "Call-ID: 843817637684230@998sdasdh09",
    "CSeq: 1826 REGISTER",
    "Contact: <sip:bob@192.0.2.1>;expires=60, <sip:bob@192.0.2.2>",
    "Contact: <sip:bob@192.0.2.3>",
    "Expires: 7200",
    "Content-Length: 0",
)


def request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def parse_error(data: bytes) -> SipParseError:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    return info.value


# ---------------------------------------------------------------------------- Headers


COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "f": "From",
    "t": "To",
    "v": "Via",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
}


@pytest.mark.parametrize(("short", "full"), COMPACT.items())
def test_compact_forms_expand(short: str, full: str) -> None:
    headers = Headers([(short.upper(), "1")])
    assert headers.items() == [(full, "1")]
    assert headers.get(full.lower()) == "1"
    assert headers.get(short) == "1"


def test_known_names_are_canonical_unknown_kept() -> None:
    headers = Headers(
        [("call-id", "1"), ("CSEQ", "1 A"), ("www-authenticate", "x"), ("max-FORWARDS", "7")]
    )
    headers.add("X-Odd-Case", "v")
    assert [n for n, _ in headers] == [
        "Call-ID",
        "CSeq",
        "WWW-Authenticate",
        "Max-Forwards",
        "X-Odd-Case",
    ]
    assert headers.get("x-odd-case") == "v"
    assert "X-ODD-CASE" in headers
    assert 42 not in headers


def test_multi_valued_access() -> None:
    headers = Headers([("Allow", "INVITE, ACK"), ("Via", "a"), ("Allow", ' BYE ,"x,y",')])
    assert headers.get("allow") == "INVITE, ACK"
    assert headers.get("missing") is None
    assert headers.get("missing", "d") == "d"
    assert headers.get_all("Allow") == ["INVITE, ACK", ' BYE ,"x,y",']
    assert headers.values("Allow") == ["INVITE", "ACK", "BYE", '"x,y"']
    assert headers.values("Nope") == []
    assert len(headers) == 3


def test_values_does_not_split_non_list_headers() -> None:
    challenge = 'Digest realm="a", nonce="b", qop="auth,auth-int"'
    headers = Headers(
        [
            ("WWW-Authenticate", challenge),
            ("WWW-Authenticate", 'Digest realm="a", algorithm=SHA-256'),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("X-Unknown", "a, b"),
            ("Contact", '"A, B" <sip:a@b>, <sip:c@d;x=1,2>'),
        ]
    )
    assert headers.values("www-authenticate") == [challenge, 'Digest realm="a", algorithm=SHA-256']
    assert headers.values("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert headers.values("X-Unknown") == ["a, b"]
    assert headers.values("m") == ['"A, B" <sip:a@b>', "<sip:c@d;x=1,2>"]


def test_mutation() -> None:
    headers = Headers([("Via", "1"), ("To", "t"), ("Via", "2"), ("Route", "r")])
    headers.add("Via", "0", first=True)
    assert headers.get_all("v") == ["0", "1", "2"]
    headers.set("via", "only")
    assert headers.items() == [("Via", "only"), ("To", "t"), ("Route", "r")]
    headers.set("Subject", "new")
    assert headers.items()[-1] == ("Subject", "new")
    assert headers.remove("route") == 1
    assert headers.remove("route") == 0
    copy = headers.copy()
    copy.add("X-A", "1")
    assert "X-A" not in headers
    assert copy != headers
    assert headers == Headers([("v", "only"), ("t", "t"), ("s", "new")])
    assert repr(headers).startswith("Headers([")


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Bad", "a\r\nVia: evil"), ("X-Bad", "a\nb"), ("Bad Name", "v"), ("", "v"), ("X:Y", "v")],
)
def test_headers_refuse_injection_and_bad_names(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="header"):
        Headers().add(name, value)
    with pytest.raises(ValueError, match="header"):
        Headers().set(name, value)


# ---------------------------------------------------------------------------- parsing


def test_parse_register() -> None:
    msg = request(REGISTER)
    assert (msg.method, msg.uri, msg.version, msg.body) == (
        "REGISTER",
        "sip:example.com",
        "SIP/2.0",
        b"",
    )
    assert msg.ruri.host == "example.com"
    assert msg.call_id == "843817637684230@998sdasdh09"
    assert msg.cseq == CSeq(1826, "REGISTER")
    assert msg.top_via.branch == "z9hG4bKnashds7"
    assert [v.host for v in msg.vias] == ["192.0.2.1"]
    assert msg.from_.tag == "456248"
    assert msg.to.display_name == "Bob"
    assert [str(c.uri) for c in msg.contacts] == [
        "sip:bob@192.0.2.1",
        "sip:bob@192.0.2.2",
        "sip:bob@192.0.2.3",
    ]
    assert msg.contacts[0].expires == 60
    assert (msg.max_forwards, msg.expires, msg.content_type, msg.date) == (70, 7200, None, None)
    assert repr(msg) == "<Request REGISTER sip:example.com>"


def test_leniency() -> None:
    data = (
        b"\r\n\r\nOPTIONS sip:a@b sip/2.0\n"
        b"v  :SIP/2.0/UDP h;branch=z9hG4bK1\n"
        b"tO: <sip:a@b>\n"
        b"f:<sip:c@d>\n"
        b" ;tag=1\n"
        b"\tX-Folded: not a header\n"
        b"I:  x  \n"
        b"cseq:\t1\n"
        b"  OPTIONS\n"
        b"\n"
        b"body"
    )
    msg = request(data)
    assert msg.headers.items() == [
        ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"),
        ("To", "<sip:a@b>"),
        ("From", "<sip:c@d> ;tag=1 X-Folded: not a header"),
        ("Call-ID", "x"),
        ("CSeq", "1 OPTIONS"),
    ]
    assert msg.version == "SIP/2.0"  # case-insensitive on input (§7.1), upper case out
    assert msg.body == b"body"  # no Content-Length on a datagram: the rest is the body


def test_no_blank_line_and_trailing_bytes() -> None:
    # RFC 4475 baddn ends after its last header line; dblreq has a second message after
    # the first one's Content-Length, which is discarded (§18.3).
    assert request(REGISTER[:-2]).body == b""
    assert request(REGISTER + b"INVITE sip:x SIP/2.0\r\n\r\n").body == b""
    body = request(REGISTER.replace(b"Content-Length: 0", b"Content-Length: 3") + b"abcdef").body
    assert body == b"abc"


def test_header_bytes_that_are_not_utf8_survive() -> None:
    data = REGISTER.replace(b"Expires: 7200", b"X-Bin: \xff\xfe ok \xc3\xa9")
    msg = request(data)
    assert msg.headers.get("X-Bin") == "\udcff\udcfe ok é"
    assert msg.to_bytes() == data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "Empty message"),
        (b"\r\n\r\n", "Empty message"),
        (b"\x00\xff garbage", "Bad Request-Line"),
        (b"INVITE sip:a@b SIP/2.0", "Missing Call-ID"),
        (
            REGISTER.replace(
                b"REGISTER sip:example.com SIP/2.0", b"REGISTER  sip:example.com SIP/2.0"
            ),
            "Bad Request-Line",
        ),
        (REGISTER.replace(b"SIP/2.0\r\nVia", b"SIP/2.0 \r\nVia"), "Bad Request-Line"),
        (REGISTER.replace(b"sip:example.com SIP", b"sip:example.com;\tlr SIP"), "Bad Request-URI"),
        (REGISTER.replace(b"REGISTER sip", b"REGI(STER sip"), "Bad Request-Line"),
        (REGISTER.replace(b"sip:example.com SIP", b"<sip:example.com> SIP"), "Bad Request-URI"),
        (REGISTER.replace(b"SIP/2.0\r\nVia", b"HTTP/1.1\r\nVia"), "Bad Request-Line"),
        (REGISTER.replace(b"Expires: 7200", b"Expires 7200"), "Bad header line"),
        (REGISTER.replace(b"Expires: 7200", b"Bad Name: 7200"), "Bad header line"),
        (b" " + REGISTER, "Bad Request-Line"),
        (REGISTER.replace(b"Content-Length: 0", b"Content-Length: 10"), "Content-Length mismatch"),
        (REGISTER.replace(b"Content-Length: 0", b"Content-Length: -1"), "Bad Content-Length"),
        (REGISTER.replace(b"Content-Length: 0", b"l: 0\r\nl: 0"), "Multiple Content-Length"),
        (REGISTER.replace(b"Call-ID: 8", b"i: 1\r\nCall-ID: 8"), "Multiple Call-ID"),
        (REGISTER.replace(b"CSeq: 1826 REGISTER", b"CSeq: 1826"), "Bad CSeq"),
        (REGISTER.replace(b"CSeq: 1826 REGISTER", b"CSeq: 1826 INVITE"), "CSeq method mismatch"),
    ],
)
def test_parse_errors(data: bytes, reason: str) -> None:
    err = parse_error(data)
    assert err.reason == reason
    assert status_for_error(err) == 400


@pytest.mark.parametrize("name", ["Call-ID", "From", "To", "CSeq", "Via"])
def test_missing_mandatory_header_keeps_a_partial_request(name: str) -> None:
    lines = [line for line in REGISTER.decode().split("\r\n") if not line.startswith(name + ":")]
    err = parse_error("\r\n".join(lines).encode())
    assert err.reason == f"Missing {name}"
    assert err.status == 400
    assert isinstance(err.partial, Request)
    assert err.partial.method == "REGISTER"
    assert name not in err.partial.headers
    assert is_answerable(err.partial) == (name not in ("Via", "From", "To", "Call-ID", "CSeq"))


def test_example_s3_invite_without_call_id_gets_400_missing_call_id() -> None:
    # spec/sip.md Ex. S-3.
    data = sip(
        "INVITE sip:bob@127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bK1",
        "From: <sip:alice@127.0.0.1>;tag=1",
        "To: <sip:bob@127.0.0.1>",
        "CSeq: 1 INVITE",
        "Content-Length: 0",
    )
    err = parse_error(data)
    assert err.partial is not None
    response = make_response(err.partial, status_for_error(err), err.reason, to_tag="t")
    assert response.to_bytes().startswith(b"SIP/2.0 400 Missing Call-ID\r\nVia: SIP/2.0/UDP")
    assert response.to.tag == "t"


def test_error_statuses() -> None:
    err = parse_error(REGISTER.replace(b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia"))
    assert (err.reason, err.version_not_supported, status_for_error(err)) == (
        "Version Not Supported",
        True,
        505,
    )
    assert err.partial is not None
    unknown = REGISTER.replace(b"REGISTER sip:", b"NEWMETHOD sip:")
    assert parse_error(unknown).status == 501  # RFC 4475 mismatch02
    big = parse_error(b"X" * (MAX_MESSAGE_SIZE + 1))
    assert (big.too_large, big.status, big.partial) == (True, 513, None)
    assert "Bad CSeq" in repr(parse_error(REGISTER.replace(b"1826 REG", b"x REG")))


def test_unknown_method_and_scheme_are_representable() -> None:
    msg = request(
        REGISTER.replace(b"REGISTER sip:example.com", b"FOO tel:+15551234").replace(
            b"1826 REGISTER", b"1826 FOO"
        )
    )
    assert (msg.method, msg.uri) == ("FOO", "tel:+15551234")
    with pytest.raises(SipParseError) as info:
        _ = msg.ruri
    assert (info.value.reason, status_for_error(info.value)) == ("Unsupported URI scheme", 416)


def test_request_uri_must_not_carry_headers() -> None:
    msg = request(REGISTER.replace(b"sip:example.com SIP", b"sip:example.com?Route=x SIP"))
    with pytest.raises(SipParseError, match="Bad Request-URI"):
        _ = msg.ruri
    msg.uri = "sip:other.example.com"
    assert msg.ruri.host == "other.example.com"


def test_parse_response() -> None:
    data = sip(
        "SIP/2.0 180 Ringing Now",
        "Via: SIP/2.0/UDP a;branch=z9hG4bK1",
        "Via: SIP/2.0/UDP b;branch=z9hG4bK2",
        "From: <sip:a@b>;tag=1",
        "To: <sip:c@d>;tag=2",
        "Call-ID: x",
        "CSeq: 7 INVITE",
        "Content-Type: application/SDP",
        "Content-Length: 3",
        body="v=0",
    )
    msg = parse_message(data)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason, msg.body, msg.content_type) == (
        180,
        "Ringing Now",
        b"v=0",
        "application/sdp",
    )
    assert [v.host for v in msg.vias] == ["a", "b"]
    assert msg.cseq == CSeq(7, "INVITE")
    assert repr(msg) == "<Response 180 Ringing Now>"
    assert parse_message(data.replace(b"180 Ringing Now", b"100")).reason == ""  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "start",
    [
        b"SIP/2.0",
        b"SIP/2.0 99 Low",
        b"SIP/2.0 700 High",
        b"SIP/2.0 4294967301 Big",
        b"SIP/2.0 2x0 OK",
        b"SIP/2.0  200 OK",
        b"HTTP/1.1 200 OK",
        b"SIP/x 200 OK",
    ],
)
def test_bad_status_lines(start: bytes) -> None:
    data = sip(
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP a",
        "From: <sip:a@b>",
        "To: <sip:a@b>",
        "Call-ID: x",
        "CSeq: 1 INVITE",
    )
    err = parse_error(data.replace(b"SIP/2.0 200 OK", start, 1))
    assert err.partial is None
    assert err.reason in ("Bad Status-Line", "Bad Request-Line")
    assert parse_error(data.replace(b"SIP/2.0 200", b"SIP/3.0 200")).version_not_supported


def test_response_missing_headers_and_bad_lines() -> None:
    assert parse_error(sip("SIP/2.0 200 OK", "Via: SIP/2.0/UDP a")).reason == "Missing Call-ID"
    bad = sip("SIP/2.0 200 OK", "Via: SIP/2.0/UDP a", "oops")
    assert parse_error(bad).reason == "Bad header line"


# ---------------------------------------------------------------------------- accessors


def test_accessors_are_cached_and_invalidated() -> None:
    msg = request(REGISTER)
    first = msg.to
    assert msg.to is first
    msg.headers.set("To", "<sip:carol@example.com>")
    assert msg.to.uri.user == "carol"
    msg.headers.remove("Contact")
    assert msg.contacts == []
    msg.headers.add("Contact", "*")
    assert msg.contacts == [WILDCARD]
    msg.headers.add("Contact", "<sip:a@b>")
    with pytest.raises(SipParseError, match="Bad Contact"):
        _ = msg.contacts
    msg.headers = Headers([("CSeq", "5 REGISTER")])
    assert msg.cseq == CSeq(5, "REGISTER")
    vias = msg.vias
    vias.append(msg.top_via if vias else None)  # type: ignore[arg-type]
    assert msg.vias == []  # callers get a copy of the cached list


def test_missing_and_bad_optional_headers() -> None:
    msg = Request("OPTIONS", "sip:a@b")
    for name in ("call_id", "cseq", "top_via", "from_", "to"):
        with pytest.raises(SipParseError, match="Missing"):
            getattr(msg, name)
    assert (msg.vias, msg.contacts, msg.max_forwards, msg.expires, msg.content_type) == (
        [],
        [],
        None,
        None,
        None,
    )
    msg.headers.add("Max-Forwards", "300")
    with pytest.raises(SipParseError, match="Bad Max-Forwards"):
        _ = msg.max_forwards
    msg.headers.set("Max-Forwards", "1")
    msg.headers.add("Max-Forwards", "2")
    with pytest.raises(SipParseError, match="Multiple Max-Forwards"):
        _ = msg.max_forwards
    msg.headers.add("Date", "Fri, 01 Jan 2010 16:00:00 EST")
    with pytest.raises(SipParseError, match="Bad Date"):
        _ = msg.date


# ---------------------------------------------------------------------------- to_bytes


def test_to_bytes_writes_a_correct_content_length() -> None:
    msg = Request("MESSAGE", "sip:a@b", [("v", "SIP/2.0/UDP h"), ("l", "999"), ("l", "5")], b"hi")
    assert msg.to_bytes() == (
        b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nContent-Length: 2\r\n\r\nhi"
    )
    assert Response(486, headers=[("Call-ID", "x")]).to_bytes() == (
        b"SIP/2.0 486 Busy Here\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n"
    )


def test_round_trip() -> None:
    msg = request(REGISTER)
    again = request(msg.to_bytes())
    assert (again.method, again.uri, again.headers, again.body) == (
        msg.method,
        msg.uri,
        msg.headers,
        msg.body,
    )
    assert msg.to_bytes() == REGISTER


# ---------------------------------------------------------------------------- responses


def test_make_response_copies_what_8_2_6_2_says() -> None:
    msg = request(
        REGISTER.replace(
            b"Max-Forwards: 70", b"Via: SIP/2.0/TCP proxy;branch=z9hG4bK2\r\nTimestamp: 54"
        )
    )
    response = make_response(msg, 200, to_tag="abc", headers=[("Contact", "<sip:bob@x>")])
    assert response.status == 200
    assert response.reason == "OK"
    assert response.headers.items() == [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds7;rport"),
        ("Via", "SIP/2.0/TCP proxy;branch=z9hG4bK2"),
        ("From", "Bob <sip:bob@example.com>;tag=456248"),
        ("To", "Bob <sip:bob@example.com>;tag=abc"),
        ("Call-ID", "843817637684230@998sdasdh09"),
        ("CSeq", "1826 REGISTER"),
        ("Contact", "<sip:bob@x>"),
    ]
    trying = make_response(msg, 100)
    assert trying.headers.get("Timestamp") == "54"  # §8.2.6.1
    assert trying.to.tag is None
    assert make_response(msg, 480, "Gone Fishing").reason == "Gone Fishing"


def test_make_response_keeps_an_existing_to_tag_and_odd_to() -> None:
    msg = request(REGISTER.replace(b"To: Bob <sip:bob@example.com>", b"To: <sip:b@x>;tag=old"))
    assert make_response(msg, 200, to_tag="new").to.tag == "old"
    odd = request(REGISTER.replace(b"To: Bob <sip:bob@example.com>", b"To: Bell, A <sip:b@x>"))
    assert make_response(odd, 400, to_tag="new").headers.get("To") == "Bell, A <sip:b@x>"
    lone_cr = request(REGISTER.replace(b"Call-ID: 8", b"Call-ID: \r8"))
    assert make_response(lone_cr, 400).call_id == "\r843817637684230@998sdasdh09"


def test_is_answerable() -> None:
    assert is_answerable(request(REGISTER))
    assert not is_answerable(Request("OPTIONS", "sip:a@b"))
    bad_via = Request(
        "OPTIONS",
        "sip:a@b",
        [("Via", "garbage"), ("From", "f"), ("To", "t"), ("Call-ID", "c"), ("CSeq", "1 OPTIONS")],
    )
    assert not is_answerable(bad_via)


# ---------------------------------------------------------------------------- errors, status


def test_sip_error_is_the_response() -> None:
    err = SipError(486)
    assert (err.status, err.reason, err.headers, str(err)) == (
        486,
        "Busy Here",
        [],
        "486 Busy Here",
    )
    brief = SipError(423, headers=[("Min-Expires", "60")])
    assert brief.headers == [("Min-Expires", "60")]
    assert status_for_error(brief) == 423
    assert repr(SipError(420, "Bad Extension")) == "SipError(420, 'Bad Extension')"
    with pytest.raises(ValueError, match="failure status"):
        SipError(200)


def test_reason_phrases() -> None:
    required = [
        100,
        180,
        181,
        182,
        183,
        200,
        300,
        301,
        302,
        305,
        380,
        400,
        401,
        402,
        403,
        404,
        405,
        406,
        407,
        408,
        410,
        413,
        414,
        415,
        416,
        420,
        421,
        423,
        433,
        480,
        481,
        482,
        483,
        484,
        485,
        486,
        487,
        488,
        489,
        491,
        493,
        494,
        500,
        501,
        502,
        503,
        504,
        505,
        513,
        580,
        600,
        603,
        604,
        606,
        607,
        608,
    ]
    assert set(required) <= REASON_PHRASES.keys()
    assert reason_phrase(481) == "Call/Transaction Does Not Exist"
    assert reason_phrase(423) == "Interval Too Brief"
    assert reason_phrase(499) == "Bad Request"  # unknown: its class's x00 (§8.1.3.2)
    assert reason_phrase(299) == "OK"
    for code in (99, 700, 0):
        with pytest.raises(ValueError, match="status code"):
            reason_phrase(code)
