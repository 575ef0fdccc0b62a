"""Structured header values: tokenizer, CSeq, integers, Date, Via, name-addr."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialtone.sip.errors import SipParseError
from dialtone.sip.headers import (
    WILDCARD,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    is_token,
    media_type,
    parse_content_length,
    parse_cseq,
    parse_date,
    parse_expires,
    parse_max_forwards,
    parse_min_expires,
    parse_name_addr,
    parse_name_addr_list,
    parse_params,
    parse_uint,
    parse_via,
    parse_via_list,
    quote,
    split_quoted,
    unquote,
)
from dialtone.sip.uri import parse_uri

# ---------------------------------------------------------------------------- tokenizer


def test_split_quoted_respects_quotes_escapes_and_angles() -> None:
    text = '"Bob, \\"Jr\\"" <sip:b@x;a=1,2>, <sip:c@y> ;q=1 , sip:d@z'
    assert split_quoted(text) == [
        '"Bob, \\"Jr\\"" <sip:b@x;a=1,2>',
        "<sip:c@y> ;q=1",
        "sip:d@z",
    ]


def test_split_quoted_digest_style_and_other_separator() -> None:
    text = 'Digest username="a,b", realm="x", nonce="n", qop=auth'
    assert split_quoted(text) == ['Digest username="a,b"', 'realm="x"', 'nonce="n"', "qop=auth"]
    assert split_quoted('a;b="x;y";c', ";") == ["a", 'b="x;y"', "c"]


def test_split_quoted_keeps_empty_pieces_and_fast_paths() -> None:
    assert split_quoted("a,,b, ") == ["a", "", "b", ""]
    assert split_quoted("  one  ") == ["one"]
    assert split_quoted("") == [""]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('"open, x', "Unterminated quoted string"),
        ("<sip:a@b, c", "Unbalanced <"),
        ('a, "b\\"', "Unterminated quoted string"),
    ],
)
def test_split_quoted_errors(text: str, reason: str) -> None:
    with pytest.raises(SipParseError, match=reason):
        split_quoted(text)


def test_parse_params_lws_quotes_and_flags() -> None:
    text = ' ; tag = 1918 ;lr; q=0.5 ;x="a \\"b\\"; c" ;received=[2001:db8::1]'
    assert parse_params(text) == (
        ("tag", "1918"),
        ("lr", None),
        ("q", "0.5"),
        ("x", '"a \\"b\\"; c"'),
        ("received", "[2001:db8::1]"),
    )
    assert parse_params("") == ()
    assert parse_params("   ") == ()


@pytest.mark.parametrize("text", [";;", ";a;;b", "tag=1", ";a=", ";=b", ";a b", ';a="x', ";a=b c"])
def test_parse_params_errors(text: str) -> None:
    with pytest.raises(SipParseError, match="Bad parameter"):
        parse_params(text)


def test_quote_unquote() -> None:
    assert unquote('"a \\"b\\" \\\\ c"') == 'a "b" \\ c'
    assert unquote("token") == "token"
    assert quote('a "b" \\') == '"a \\"b\\" \\\\"'
    # Controls become quoted-pairs; CR/LF (no quoted-pair can carry them) become spaces.
    assert quote("x\x00\x07\ty\r\nz") == '"x\\\x00\\\x07\ty  z"'
    for text in ["plain", 'q"u"o\\te', "ctl\x01\x7f", "tab\there"]:
        assert unquote(quote(text)) == text


def test_is_token() -> None:
    assert is_token("!interesting-Method0123456789_*+`.%indeed'~")
    for bad in ["", "a b", "a:b", "a,b", "é", "a/b", "(x)"]:
        assert not is_token(bad)


def test_canonical_name() -> None:
    assert canonical_name("i") == "Call-ID"
    assert canonical_name("CALL-ID") == "Call-ID"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert canonical_name("X-Custom") == "X-Custom"


# ---------------------------------------------------------------------------- scalars


def test_cseq() -> None:
    assert parse_cseq("0009\t INVITE") == CSeq(9, "INVITE")
    assert parse_cseq(f" {2**31 - 1} ACK ") == CSeq(2**31 - 1, "ACK")
    assert str(CSeq(4, "REGISTER")) == "4 REGISTER"
    assert parse_cseq("1 !interesting-Method0123456789_*+`.%indeed'~").method.startswith("!")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1",
        "INVITE",
        "1 INVITE x",
        f"{2**31} INVITE",
        "-1 INVITE",
        "1 IN:VITE",
        "36893488147419103232 REGISTER",
        "١ INVITE",
        "1,INVITE",
    ],
)
def test_bad_cseq(value: str) -> None:
    with pytest.raises(SipParseError, match="Bad CSeq"):
        parse_cseq(value)


def test_integer_headers() -> None:
    assert parse_max_forwards(" 0068 ") == 68
    assert parse_max_forwards("0") == 0
    assert parse_expires("4294967295") == 2**32 - 1
    assert parse_min_expires("60") == 60
    assert parse_content_length("150") == 150
    assert parse_uint("7", "thing", 10) == 7


@pytest.mark.parametrize(
    ("parse", "value", "reason"),
    [
        (parse_max_forwards, "256", "Bad Max-Forwards"),
        (parse_max_forwards, "-1", "Bad Max-Forwards"),
        (parse_max_forwards, "", "Bad Max-Forwards"),
        (parse_max_forwards, "7 0", "Bad Max-Forwards"),
        (parse_max_forwards, "²", "Bad Max-Forwards"),  # isdigit() but not a digit
        (parse_expires, "4294967296", "Bad Expires"),
        (parse_min_expires, "x", "Bad Min-Expires"),
        (parse_expires, "1" * 5000, "Bad Expires"),  # would hit int()'s 4300-digit limit
        (parse_content_length, "-999", "Bad Content-Length"),
        (parse_content_length, "0x10", "Bad Content-Length"),
    ],
)
def test_bad_integer_headers(parse: object, value: str, reason: str) -> None:
    assert callable(parse)
    with pytest.raises(SipParseError, match=reason):
        parse(value)


def test_date() -> None:
    assert parse_date("Sat, 13 Nov 2010 23:29:00 GMT") == datetime(2010, 11, 13, 23, 29, tzinfo=UTC)
    for bad in [
        "Fri, 01 Jan 2010 16:00:00 EST",
        "Sat, 13 Nov 2010 23:29:00 UTC",
        "Sat, 31 Feb 2010 23:29:00 GMT",
        "yesterday",
        "",
    ]:
        with pytest.raises(SipParseError, match="Bad Date"):
            parse_date(bad)


def test_media_type() -> None:
    assert media_type(" Application/SDP ; charset=utf-8") == "application/sdp"
    assert media_type("multipart/mixed;boundary=7a9c") == "multipart/mixed"


# ---------------------------------------------------------------------------- Via


def test_via_with_lws_everywhere() -> None:
    via = parse_via("SIP  / 2.0  / TCP     spindle.example.com   ;   branch  =   z9hG4bK9ikj8  ")
    assert via == Via(
        protocol="SIP/2.0/TCP", host="spindle.example.com", params=(("branch", "z9hG4bK9ikj8"),)
    )
    assert via.transport == "TCP"
    assert str(via) == "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8"


def test_via_parameters() -> None:
    via = parse_via(
        "SIP/2.0/udp 192.0.2.1 : 5070;branch=z9hG4bKx;rport;received=192.0.2.9"
        ";ttl=16;maddr=224.2.0.1"
    )
    assert (via.host, via.port, via.sent_by) == ("192.0.2.1", 5070, "192.0.2.1:5070")
    assert via.transport == "UDP"
    assert via.branch == "z9hG4bKx"
    assert via.has_rport and via.rport is None
    assert via.received == "192.0.2.9"
    assert via.ttl == 16
    assert via.maddr == "224.2.0.1"
    filled = via.with_param("rport", "5071").with_param("received", "203.0.113.5")
    assert filled.rport == 5071
    assert str(filled) == (
        "SIP/2.0/udp 192.0.2.1:5070;branch=z9hG4bKx;rport=5071;received=203.0.113.5"
        ";ttl=16;maddr=224.2.0.1"
    )
    bare = parse_via("SIP/2.0/UDP [2001:db8::9]")
    assert (bare.host, bare.port, bare.branch, bare.has_rport, bare.ttl) == (
        "[2001:db8::9]",
        None,
        None,
        False,
        None,
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SIP/2.0 host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ;branch=1",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host junk",
        "SIP/2.0/UDPhost",
    ],
)
def test_bad_via(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(value)


def test_bad_via_scalar_params_raise_on_access() -> None:
    via = parse_via("SIP/2.0/UDP h;ttl=999;rport=x")
    with pytest.raises(SipParseError):
        _ = via.ttl
    with pytest.raises(SipParseError):
        _ = via.rport


def test_via_list() -> None:
    vias = parse_via_list("SIP/2.0/UDP a;branch=1 , SIP/2.0/TCP b:5061;branch=2")
    assert [(v.host, v.port, v.branch) for v in vias] == [("a", None, "1"), ("b", 5061, "2")]
    for bad in ["SIP/2.0/UDP 192.0.2.15;;,;,,", "SIP/2.0/UDP a,", ",SIP/2.0/UDP a"]:
        with pytest.raises(SipParseError):
            parse_via_list(bad)


# ---------------------------------------------------------------------------- name-addr


def test_quoted_display_name_with_escapes() -> None:
    addr = parse_name_addr('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com> ; tag = 98asjd8')
    assert addr.display_name == 'J Rosenberg \\"'
    assert addr.uri == parse_uri("sip:jdrosen@example.com")
    assert addr.tag == "98asjd8"
    assert str(addr) == '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com>;tag=98asjd8'


def test_unquoted_display_names() -> None:
    assert parse_name_addr("caller<sip:caller@example.com>;tag=323").display_name == "caller"
    addr = parse_name_addr("token1~` token2'+_   token3*%!.- <sip:mundane@example.com>")
    assert addr.display_name == "token1~` token2'+_ token3*%!.-"
    assert str(addr) == "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>"
    assert parse_name_addr("<sip:a@b>").display_name is None
    assert parse_name_addr('"" <sip:a@b>').display_name == ""


def test_addr_spec_params_belong_to_the_header() -> None:
    # RFC 3261 §20.10, RFC 4475 cparam01: without <>, ;params are header parameters.
    addr = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam;tag=1")
    assert addr.uri == parse_uri("sip:+19725552222@gw1.example.net")
    assert addr.params == (("unknownparam", None), ("tag", "1"))
    inner = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert inner.uri.params == (("unknownparam", None),)
    assert inner.params == ()
    assert str(addr) == "<sip:+19725552222@gw1.example.net>;unknownparam;tag=1"


def test_contact_params() -> None:
    addr = parse_name_addr('<sip:a@b>;expires=60;q=0.7;+sip.instance="<urn:uuid:1>"')
    assert addr.expires == 60
    assert addr.q == 0.7
    assert addr.param("+sip.instance") == "<urn:uuid:1>"
    assert addr.has_param("Q")
    assert addr.tag is None
    assert addr.with_tag("x").tag == "x"
    assert parse_name_addr("<sip:a@b>").expires is None
    assert parse_name_addr("<sip:a@b>").q is None
    for bad in ["<sip:a@b>;expires=280297596632815", "<sip:a@b>;expires=soon"]:
        with pytest.raises(SipParseError):
            _ = parse_name_addr(bad).expires
    with pytest.raises(SipParseError):
        _ = parse_name_addr("<sip:a@b>;q=1.5").q


def test_str_requotes_display_names_when_needed() -> None:
    uri = parse_uri("sip:a@b")
    assert str(NameAddr(uri=uri, display_name="Alice")) == "Alice <sip:a@b>"
    assert str(NameAddr(uri=uri, display_name="Alice Smith")) == "Alice Smith <sip:a@b>"
    assert str(NameAddr(uri=uri, display_name="Smith, Alice")) == '"Smith, Alice" <sip:a@b>'
    assert str(NameAddr(uri=uri, display_name='Al "the" Pal')) == '"Al \\"the\\" Pal" <sip:a@b>'
    assert str(NameAddr(uri=uri, display_name="Zoë")) == '"Zoë" <sip:a@b>'
    evil = NameAddr(uri=uri, display_name="x\r\nVia: evil")
    assert "\r" not in str(evil) and "\n" not in str(evil)


def test_wildcard() -> None:
    assert parse_name_addr(" * ") is WILDCARD
    assert WILDCARD.is_wildcard
    assert str(WILDCARD) == "*"
    assert not parse_name_addr("<sip:a@b>").is_wildcard


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "Empty address"),
        ('"Mr. J. User <sip:j.user@example.com>', "Unterminated quoted string"),
        ('"Watson, Thomas" < sip:t.watson@example.org >', "Bad URI"),
        ("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", "Bad display name"),
        ("sip:user@example.com?Route=%3Csip:sip.example.com%3E", "Bad addr-spec"),
        ('"Bob" sip:bob@x', "Bad name-addr"),
        ("<sip:bob@x", "Unbalanced <"),
        ("<sip:bob@x>;;", "Bad parameter"),
        ("<sip:bob@x> junk", "Bad parameter"),
        ("<http://www.example.com>;tag=3", "Unsupported URI scheme"),
        ("isbn:2983792873", "Unsupported URI scheme"),
    ],
)
def test_bad_name_addrs(value: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_name_addr(value)
    assert info.value.reason == reason


def test_name_addr_list() -> None:
    addrs = parse_name_addr_list('"Bob, Jr" <sip:b@x;a=1>;q=1, <sip:c@y>,sip:d@z;expires=5')
    assert [str(a.uri) for a in addrs] == ["sip:b@x;a=1", "sip:c@y", "sip:d@z"]
    assert addrs[0].display_name == "Bob, Jr"
    assert addrs[2].expires == 5
    assert parse_name_addr_list("*") == [WILDCARD]
    for bad in ["*, <sip:a@b>", "<sip:a@b>,", "<sip:a@b>,,<sip:c@d>"]:
        with pytest.raises(SipParseError):
            parse_name_addr_list(bad)
