"""Property tests: no input makes the SIP layer raise anything but SipParseError.

And what parses survives a serialise/parse round trip unchanged.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialtone.sip.errors import SipParseError
from dialtone.sip.framing import KEEPALIVE, KeepAlive, StreamFramer
from dialtone.sip.headers import parse_name_addr_list, parse_params, parse_via_list, split_quoted
from dialtone.sip.message import Request, Response, parse_message
from dialtone.sip.uri import parse_uri, uris_equal

FIXTURES = sorted((Path(__file__).parent / "torture").glob("*/*.sip"))
SEEDS = [p.read_bytes() for p in FIXTURES]
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
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def start_line(msg: Request | Response) -> tuple[object, ...]:
    if isinstance(msg, Request):
        return (msg.method, msg.uri, msg.version)
    return (msg.status, msg.reason, msg.version)


def lines_without_length(msg: Request | Response) -> list[tuple[str, str]]:
    return [(n, v) for n, v in msg.headers if n != "Content-Length"]


def exercise(data: bytes) -> None:
    """Parse ``data``, read every accessor, and round-trip what parsed."""
    try:
        msg = parse_message(data)
    except SipParseError as err:
        if err.partial is not None:
            exercise_accessors(err.partial)
        return
    exercise_accessors(msg)
    again = parse_message(msg.to_bytes())
    assert start_line(again) == start_line(msg)
    assert lines_without_length(again) == lines_without_length(msg)
    assert again.body == msg.body


def exercise_accessors(msg: Request | Response) -> None:
    names = ("ruri", *ACCESSORS) if isinstance(msg, Request) else ACCESSORS
    for name in names:
        try:
            value = getattr(msg, name)
        except SipParseError:
            continue
        str(value)  # every structured value serialises


@FUZZ
@given(st.binary(max_size=1500))
def test_arbitrary_bytes(data: bytes) -> None:
    exercise(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["flip", "insert", "delete", "dup-line", "crlf"]))
        if edit == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = draw(
                st.sampled_from(
                    [
                        b" ",
                        b"\t",
                        b";",
                        b",",
                        b":",
                        b'"',
                        b"<",
                        b">",
                        b"\\",
                        b"%",
                        b"=",
                        b"\r\n",
                        b"\r\n ",
                        b"\x00",
                        b"\xff",
                        b"@",
                        b"?",
                        b"*",
                    ]
                )
            )
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif edit == "dup-line":
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            if end > start:
                data[start:start] = data[start : end + 1]
        elif edit == "crlf":
            data[at:at] = b"\r\n"
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_torture_messages(data: bytes) -> None:
    exercise(data)


TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
VALUE = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=40
).map(lambda v: v.strip(" \t"))
URIS = st.sampled_from(
    [
        "sip:a@b",
        "sips:alice@example.com:5061;transport=tcp",
        "tel:+1555",
        "sip:[2001:db8::1];lr",
        "urn:service:sos",
        "sip:x;y=z?h=v",
    ]
)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(TOKEN)
    headers = [
        ("Via", f"SIP/2.0/UDP host;branch=z9hG4bK{draw(TOKEN)}"),
        ("From", f"<sip:a@b>;tag={draw(TOKEN)}"),
        ("To", "<sip:c@d>"),
        ("Call-ID", draw(TOKEN)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
    ]
    extra = draw(st.lists(st.tuples(TOKEN.map(lambda t: "X-" + t), VALUE), max_size=6))
    order = draw(st.permutations(headers + extra))
    return Request(method, draw(URIS), order, draw(st.binary(max_size=200)))


@FUZZ
@given(requests())
def test_generated_requests_round_trip(msg: Request) -> None:
    again = parse_message(msg.to_bytes())
    assert isinstance(again, Request)
    assert (again.method, again.uri, again.body) == (msg.method, msg.uri, msg.body)
    assert lines_without_length(again) == lines_without_length(msg)


@settings(FUZZ, max_examples=100)
@given(st.lists(requests(), min_size=1, max_size=4), st.data())
def test_framer_reassembles_any_chunking(msgs: list[Request], data: st.DataObject) -> None:
    wire = b""
    expected: list[bytes | KeepAlive] = []
    for msg in msgs:
        if data.draw(st.booleans()):
            wire += b"\r\n\r\n"
            expected.append(KEEPALIVE)
        wire += msg.to_bytes()
        expected.append(msg.to_bytes())
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    framer = StreamFramer()
    out: list[bytes | KeepAlive] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        out += framer.feed(wire[start:end])
    assert out == expected
    assert framer.buffered == 0


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=5))
def test_framer_never_raises_other_errors(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer()
    try:
        for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True):
            for item in framer.feed(data[start:end]):
                if isinstance(item, bytes):
                    exercise(item)
    except SipParseError:
        pass


TEXT = st.text(st.sampled_from('ab:;,="\\<>@?% \t*[]1'), max_size=40)


@FUZZ
@given(TEXT)
def test_header_parsers_raise_only_sip_parse_errors(text: str) -> None:
    for parse in (parse_uri, parse_params, parse_via_list, parse_name_addr_list, split_quoted):
        with contextlib.suppress(SipParseError):
            parse(text)
    try:
        uri = parse_uri("sip:" + text)
    except SipParseError:
        return
    assert str(parse_uri(str(uri))) == str(uri)
    assert uris_equal(uri, parse_uri(str(uri)))
