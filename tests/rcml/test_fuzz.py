"""Property tests: whatever the bytes, parse_document returns a Document or raises RcmlError.

Arbitrary bytes, XML-looking text, and good fixture documents mutated byte by byte are fed
to the parser under every Content-Type class (DOC-2); nothing but RcmlError may escape, and
every error carries a code and a DOC-21 message naming the document URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialtone.rcml.errors import RcmlError
from dialtone.rcml.nodes import Document
from dialtone.rcml.parser import parse_document

GOOD = sorted((Path(__file__).parent / "documents" / "good").glob("*.xml"))
SEEDS = [path.read_bytes() for path in GOOD]
URL = "http://app.test/voice"
CONTENT_TYPES = st.sampled_from(
    [None, "text/xml", "application/xml; charset=utf-8", "text/html", "application/x+xml",
     "text/plain", "text/plain; charset=bogus", "audio/wav", "application/json"]
)  # fmt: skip
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that steer mutations towards the parser's interesting paths.
TOKENS = [
    b"<", b">", b"/", b"\"", b"'", b"=", b"&", b";", b"#", b"\n", b" ", b"\x00", b"\xff",
    b"<Dial>", b"</Dial>", b"<Client>", b"<Number>", b"<Sip>", b"<Say>", b"<Gather>",
    b"<!DOCTYPE x>", b"<!ENTITY a 'b'>", b"&amp;", b"&a;", b"<![CDATA[", b"]]>", b"<!--", b"-->",
    b"xmlns:x='urn:x'", b"x:a='1'", b"xml:lang='en'", b"sip:", b"sips:", b"?X-A=1&",
    b"client:", b"%0d%0a", b"#ct=1&rp=all", b"loop=", b"statusCallbackEvent=", b"\xef\xbb\xbf",
    b"<?xml version='1.0' encoding='utf-16'?>", b"encoding='shift_jis'", b"\r\n",
]  # fmt: skip


def outcome(body: bytes, content_type: str | None, **options: Any) -> Document | RcmlError:
    """Parse; return the Document or the RcmlError (anything else fails the test)."""
    try:
        return parse_document(body, URL, content_type=content_type, **options)
    except RcmlError as error:
        return error


def check(body: bytes, content_type: str | None, whisper: bool = False) -> None:
    result = outcome(body, content_type, whisper=whisper, known_clients={"alice"})
    if isinstance(result, RcmlError):
        assert result.code > 0
        assert URL in str(result)
    else:
        assert result.url == URL


@FUZZ
@given(body=st.binary(max_size=2048), content_type=CONTENT_TYPES)
def test_arbitrary_bytes(body: bytes, content_type: str | None) -> None:
    check(body, content_type)


@FUZZ
@given(
    text=st.text(alphabet=st.sampled_from(list("<>/=\"' \n&;#abcSayDilNumberCint:?%")),
                 max_size=300),
    whisper=st.booleans(),
)  # fmt: skip
def test_xml_like_text(text: str, whisper: bool) -> None:
    check(b"<Response>" + text.encode() + b"</Response>", "text/xml", whisper)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "token"]))
        if action == "insert":
            data[where:where] = bytes([draw(st.integers(0, 255))])
        elif action == "delete":
            del data[where : where + draw(st.integers(1, 8))]
        elif action == "replace" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        else:
            data[where:where] = draw(st.sampled_from(TOKENS))
    return bytes(data)


@FUZZ
@given(body=mutated(), whisper=st.booleans(), sips=st.booleans())
def test_mutated_good_documents(body: bytes, whisper: bool, sips: bool) -> None:
    result = outcome(body, "text/xml", whisper=whisper, sips_allowed=sips)
    if isinstance(result, RcmlError):
        assert str(result) == result.message_text
    else:
        assert isinstance(result, Document)


def test_deep_nesting_is_an_rcml_error_not_a_crash() -> None:
    depth = 9000
    body = b"<Response><Gather>" + b"<a>" * depth + b"</a>" * depth + b"</Gather></Response>"
    assert len(body) <= 64 * 1024
    for whisper in (False, True):
        result = outcome(body, "text/xml", whisper=whisper)
        assert isinstance(result, RcmlError) and result.code == 13320
