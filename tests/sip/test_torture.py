"""RFC 4475 torture messages, one fixture file each (tests/sip/torture/{valid,invalid}).

``valid/`` holds what RFC 4475 says a parser must accept: all of §3.1.1 and the
well-formed messages of §3.2-§3.4.  ``invalid/`` holds §3.1.2 and the §3.3 messages the
RFC says to reject as malformed (insuf, multi01, mcl01).  For each file the tables below
say where the problem is caught (``CAUGHT_BY``) and what the endpoint answers
(``EXPECTED_STATUS``; None: nothing on protocol grounds, the message goes up to the
transaction layer and application, or, for a bad response, it is dropped).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dialtone.sip.errors import SipParseError, status_for_error
from dialtone.sip.message import Request, Response, parse_message

FIXTURES = Path(__file__).parent / "torture"
ACCESSORS = (
    "call_id",
    "cseq",
    "vias",
    "top_via",
    "from_",
    "to",
    "contacts",
    "max_forwards",
    "expires",
    "content_type",
    "date",
)

VALID = {
    # §3.1.1 valid messages
    "wsinv.sip": None,
    "intmeth.sip": None,  # well-formed; the method dispatcher answers 501 (spec SIP-2)
    "esc01.sip": None,
    "escnull.sip": None,
    "esc02.sip": None,  # method "RE%47IST%45R" is not REGISTER: 501 from the dispatcher
    "lwsdisp.sip": None,
    "longreq.sip": None,
    "dblreq.sip": None,  # the INVITE after Content-Length is discarded (§18.3)
    "semiuri.sip": None,
    "transports.sip": None,
    "mpart01.sip": None,
    "unreason.sip": None,
    "noreason.sip": None,
    # §3.2 transaction layer: z9hG4bK alone; fall back to RFC 2543 matching (§17.2.3)
    "badbranch.sip": None,
    # §3.3 application layer
    "unkscm.sip": 416,  # Request-URI scheme unknown
    "novelsc.sip": 416,  # soap.beep: never meaningful to dialtone
    "unksm2.sip": 400,  # REGISTER whose To is not a SIP URI (the RFC's registrar verdict)
    "bext01.sip": 420,  # Require/Proxy-Require of unknown extensions
    "invut.sip": 415,  # INVITE body of unknown type
    "regaut01.sip": 401,  # unknown Authorization scheme: challenge with Digest
    "bcast.sip": None,  # a response: matches no transaction, dropped
    "zeromf.sip": 483,  # Max-Forwards: 0 (spec SIP-2)
    "cparam01.sip": None,
    "cparam02.sip": None,
    "regescrt.sip": None,  # escaped Route header in the Contact URI: store as is
    "sdp01.sip": 406,  # Accept does not offer application/sdp
    # §3.4 backward compatibility
    "inv2543.sip": None,
}

# invalid file -> where the error is caught: parse_message or the named accessor
CAUGHT_BY = {
    "badinv01.sip": "vias",  # Via ";;,;,," (its Contact ";;;;" fails too)
    "clerr.sip": "parse_message",  # Content-Length larger than the datagram's body
    "ncl.sip": "parse_message",  # negative Content-Length
    "scalar02.sip": "parse_message",  # CSeq 2**65 (Max-Forwards 300, Expires 10**100 too)
    "scalarlg.sip": "parse_message",  # response with CSeq 9292394834772304023312
    "quotbal.sip": "to",  # unterminated quoted display name
    "ltgtruri.sip": "parse_message",  # Request-URI in <>
    "lwsruri.sip": "parse_message",  # LWS inside the Request-URI
    "lwsstart.sip": "parse_message",  # two SPs between Request-Line elements
    "trws.sip": "parse_message",  # SPs after SIP/2.0
    "escruri.sip": "ruri",  # headers in a Request-URI
    "baddate.sip": "date",  # Date in EST
    "regbadct.sip": "contacts",  # addr-spec Contact holding '?': needs <>
    "badaspec.sip": "to",  # spaces inside <>
    "baddn.sip": "from_",  # unquoted display name with ','
    "badvers.sip": "parse_message",  # SIP/7.0
    "mismatch01.sip": "parse_message",  # CSeq method INVITE on an OPTIONS
    "mismatch02.sip": "parse_message",  # unknown method, CSeq INVITE
    "bigcode.sip": "parse_message",  # status code 4294967301
    "insuf.sip": "parse_message",  # no Call-ID, From, To
    "multi01.sip": "parse_message",  # two Call-ID, CSeq, From, To, Max-Forwards
    "mcl01.sip": "parse_message",  # two Content-Length
}
INVALID = {
    "badinv01.sip": 400,
    "clerr.sip": 400,
    "ncl.sip": 400,
    "scalar02.sip": 400,
    "scalarlg.sip": None,
    "quotbal.sip": 400,
    "ltgtruri.sip": 400,
    "lwsruri.sip": 400,
    "lwsstart.sip": 400,
    "trws.sip": 400,
    "escruri.sip": 400,
    "baddate.sip": 400,  # RFC 4475 §3.1.2.12 allows ignoring it; dialtone never reads Date
    "regbadct.sip": 400,
    "badaspec.sip": 400,
    "baddn.sip": 400,
    "badvers.sip": 505,
    "mismatch01.sip": 400,
    "mismatch02.sip": 501,
    "bigcode.sip": None,
    "insuf.sip": 400,
    "multi01.sip": 400,
    "mcl01.sip": 400,
}
EXPECTED_STATUS: dict[str, int | None] = {**VALID, **INVALID}


def load(kind: str, name: str) -> bytes:
    return (FIXTURES / kind / name).read_bytes()


def drop_length(msg: Request | Response) -> list[tuple[str, str]]:
    return [(n, v) for n, v in msg.headers if n != "Content-Length"]


def access_all(msg: Request | Response) -> dict[str, SipParseError]:
    """Call every accessor; only SipParseError may come out.  Return the failures."""
    failures: dict[str, SipParseError] = {}
    names = ("ruri", *ACCESSORS) if isinstance(msg, Request) else ACCESSORS
    for name in names:
        try:
            getattr(msg, name)
        except SipParseError as err:
            failures[name] = err
    return failures


def protocol_status(msg: Request | Response) -> int | None:
    """The RFC 4475 verdicts on well-formed messages, from what the parser exposes.

    A sketch of the endpoint's checks (its own order and policy may differ): Request-URI
    scheme (§8.2.2.1), Max-Forwards (§16.3, SIP-2), Require (§8.2.2.3), the REGISTER
    headers (§10.3), Authorization scheme (§22), INVITE body type and Accept (§8.2.3).
    """
    if isinstance(msg, Response):
        return None
    try:
        msg.ruri  # noqa: B018
    except SipParseError as err:
        return status_for_error(err)
    if msg.max_forwards == 0:
        return 483
    if msg.headers.values("Require") or msg.headers.values("Proxy-Require"):
        return 420  # dialtone supports no extension that a request can require
    if msg.method == "REGISTER":
        try:
            msg.to, msg.from_, msg.contacts  # noqa: B018
        except SipParseError as err:
            return status_for_error(err)
        auth = msg.headers.get("Authorization")
        if auth is not None and not auth.lower().startswith("digest "):
            return 401
    if msg.method == "INVITE":
        if msg.body and msg.content_type not in ("application/sdp", "multipart/mixed"):
            return 415
        accept = msg.headers.values("Accept")
        if accept and not any(a.lower().startswith("application/sdp") for a in accept):
            return 406
    return None


def test_every_rfc4475_message_is_a_fixture() -> None:
    assert len(EXPECTED_STATUS) == 49  # RFC 4475 §3 has 49 messages
    assert {p.name for p in (FIXTURES / "valid").glob("*.sip")} == VALID.keys()
    assert {p.name for p in (FIXTURES / "invalid").glob("*.sip")} == INVALID.keys()
    assert CAUGHT_BY.keys() == INVALID.keys()


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_messages_parse(name: str) -> None:
    msg = parse_message(load("valid", name))
    failures = access_all(msg)
    assert protocol_status(msg) == VALID[name]
    # Only the semantic findings may fail, and only as SipParseError.
    assert set(failures) <= {"ruri", "to", "from_", "contacts"}
    if failures:
        assert VALID[name] in (400, 416)
    again = parse_message(msg.to_bytes())  # to_bytes adds Content-Length when absent
    assert drop_length(again) == drop_length(msg) and again.body == msg.body


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_messages_are_caught(name: str) -> None:
    data = load("invalid", name)
    where = CAUGHT_BY[name]
    if where == "parse_message":
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        err = info.value
        if err.partial is not None:
            access_all(err.partial)  # a partial request is as safe to read as any
    else:
        msg = parse_message(data)
        failures = access_all(msg)
        assert where in failures
        err = failures[where]
    is_response = data.startswith(b"SIP/")
    assert EXPECTED_STATUS[name] == (None if is_response else status_for_error(err))
    if is_response:
        assert err.partial is None


def test_selected_details() -> None:
    wsinv = parse_message(load("valid", "wsinv.sip"))
    assert isinstance(wsinv, Request)
    assert wsinv.to.tag == "1918181833n"
    assert wsinv.from_.display_name == 'J Rosenberg \\"'
    assert wsinv.cseq.seq == 9 and wsinv.max_forwards == 68
    assert [v.branch for v in wsinv.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert wsinv.contacts[0].q == 0.33
    assert wsinv.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert wsinv.headers.get("Subject") == ""
    assert len(wsinv.body) == 150

    dblreq = parse_message(load("valid", "dblreq.sip"))
    assert isinstance(dblreq, Request) and dblreq.method == "REGISTER" and dblreq.body == b""

    esc02 = parse_message(load("valid", "esc02.sip"))
    assert [c.uri.host for c in esc02.contacts] == ["host1.example.com", "host3.example.com"]
    assert esc02.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"

    longreq = parse_message(load("valid", "longreq.sip"))
    assert len(longreq.vias) == 34 and len(longreq.to.uri.params) == 3

    mpart = parse_message(load("valid", "mpart01.sip"))
    assert len(mpart.body) == 553 and mpart.content_type == "multipart/mixed"

    unreason = parse_message(load("valid", "unreason.sip"))
    assert isinstance(unreason, Response)
    assert unreason.reason.startswith("= 2**3 * 5**2 но сто")
    noreason = parse_message(load("valid", "noreason.sip"))
    assert isinstance(noreason, Response) and noreason.reason == ""

    regescrt = parse_message(load("valid", "regescrt.sip"))
    assert regescrt.contacts[0].uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)

    cparam01 = parse_message(load("valid", "cparam01.sip"))
    assert cparam01.contacts[0].params == (("unknownparam", None),)
    assert cparam01.contacts[0].uri.params == ()
