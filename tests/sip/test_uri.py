"""SIP URIs: parsing, serialising and RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import dataclasses

import pytest

from dialtone.sip.errors import SipParseError
from dialtone.sip.uri import SipUri, parse_uri, unescape, uris_equal


def test_parse_full_uri() -> None:
    uri = parse_uri("sips:alice:secret@Atlanta.example.com:5061;transport=tcp;lr?subject=hi&x=1")
    assert uri == SipUri(
        scheme="sips",
        user="alice",
        password="secret",
        host="Atlanta.example.com",
        port=5061,
        params=(("transport", "tcp"), ("lr", None)),
        headers=(("subject", "hi"), ("x", "1")),
    )
    assert uri.is_secure
    assert uri.transport == "tcp"


def test_host_only_and_ipv6() -> None:
    assert parse_uri("sip:127.0.0.1") == SipUri(host="127.0.0.1")
    uri = parse_uri("sip:bob@[2001:db8::10]:5070;maddr=[::1]")
    assert (uri.user, uri.host, uri.port) == ("bob", "[2001:db8::10]", 5070)
    assert uri.param("maddr") == "[::1]"


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sips:1212@gateway.com",
        "sip:alice@192.0.2.4",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:user;par=u%40example.net@example.com",
        "sip:[2001:db8::1]:5060;lr",
        "SIP:ALICE@AtLanTa.CoM;Transport=UDP",
        "sip:%61lice@atlanta.com;transport=TCP",
        "sip:host.example.com.",
    ],
)
def test_round_trip(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_user_and_password_with_unusual_characters() -> None:
    # RFC 4475 §3.1.1.2 (intmeth): every user-unreserved character, and a password.
    text = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
        ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    uri = parse_uri(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert str(uri) == text


def test_escapes_are_kept_as_received() -> None:
    uri = parse_uri("sip:null-%00-null@example.com")
    assert uri.user == "null-%00-null"
    assert unescape(uri.user) == "null-\x00-null"
    assert unescape("no escapes") == "no escapes"


@pytest.mark.parametrize("text", ["tel:+15551234567", "mailto:a@b", "http://x", "urn:uuid:1"])
def test_other_schemes_are_unsupported(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.reason == "Unsupported URI scheme"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "sip:@example.com",
        "sip:user@",
        "sip:a b@example.com",
        "sip:example.com:99999",
        "sip:example.com:",
        "sip:%zz@example.com",
        "sip:user@%41.com",
        "sip:[::g]",
        "sip:[2001:db8::1",
        "sip:-example.com",
        "sip:example..com",
        "sip:example.com;;lr",
        "sip:example.com;a=",
        "sip:example.com?",
        "sip:example.com?novalue",
        "<sip:example.com>",
        " sip:example.com",
        "sip:example.com ",
        "sip:user@host@host",
        "1sip:x",
        'sip:example.com;a="q"',
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.reason.startswith("Bad URI")


def test_param_lookup_flags_and_defaults() -> None:
    uri = parse_uri("sip:a@b;LR;Transport=TCP;empty")
    assert uri.param("lr") == ""
    assert uri.has_param("Lr")
    assert uri.param("transport") == "TCP"
    assert uri.transport == "tcp"
    assert uri.param("maddr") is None
    assert uri.param("maddr", "x") == "x"
    assert not uri.has_param("maddr")
    assert parse_uri("sip:a@b").transport is None


def test_with_params_replaces_in_place_and_appends() -> None:
    uri = parse_uri("sip:a@b;transport=udp;lr")
    changed = uri.with_params([("x-y", "1")], transport="tcp", ob=None)
    assert str(changed) == "sip:a@b;transport=tcp;lr;x-y=1;ob"
    assert str(uri) == "sip:a@b;transport=udp;lr"  # frozen: the original is unchanged


def test_without_params_replace_and_aor() -> None:
    uri = parse_uri("sip:alice@example.com:5070;transport=tcp;lr?subject=x")
    assert str(uri.without_params("LR")) == "sip:alice@example.com:5070;transport=tcp?subject=x"
    assert str(uri.without_params()) == "sip:alice@example.com:5070?subject=x"
    assert (
        str(uri.replace(port=None, user="bob")) == "sip:bob@example.com;transport=tcp;lr?subject=x"
    )
    assert str(uri.aor()) == "sip:alice@example.com:5070"
    with pytest.raises(dataclasses.FrozenInstanceError):
        uri.host = "other"  # type: ignore[misc]


# RFC 3261 §19.1.4, the examples of equivalent and non-equivalent URIs.
EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    ("sip:a%3ab@x.com", "sip:a%3Ab@x.com"),  # reserved escapes compare case-insensitively
]
NOT_EQUAL = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:a@x.com", "sips:a@x.com"),
    ("sip:x.com", "sip:a@x.com"),
    ("sip:a:pw@x.com", "sip:a@x.com"),
    ("sip:a:pw@x.com", "sip:a:PW@x.com"),
    ("sip:a@x.com;maddr=1.2.3.4", "sip:a@x.com"),
    ("sip:a@x.com;user=phone", "sip:a@x.com"),
    ("sip:a%3ab@x.com", "sip:a:b@x.com"),  # an escaped reserved char is not the char
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_uris(a: str, b: str) -> None:
    assert uris_equal(parse_uri(a), parse_uri(b))
    assert uris_equal(parse_uri(b), parse_uri(a))


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL)
def test_unequal_uris(a: str, b: str) -> None:
    assert not uris_equal(parse_uri(a), parse_uri(b))
    assert not uris_equal(parse_uri(b), parse_uri(a))
