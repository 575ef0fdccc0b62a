"""Datagram head/body splitting and the stream framer (RFC 3261 §18.3, RFC 5626 §4.4.1)."""

from __future__ import annotations

import pytest

from dialtone.sip.errors import FramingError, SipParseError
from dialtone.sip.framing import (
    KEEPALIVE,
    MAX_MESSAGE_SIZE,
    KeepAlive,
    StreamFramer,
    datagram_body,
    split_head,
)
from dialtone.sip.message import Request, parse_message


def message(body: bytes = b"", *, length: str | None = None, name: str = "Content-Length") -> bytes:
    head = (
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\n"
        "To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
    )
    if length is None:
        length = str(len(body))
    if length != "":
        head += f"{name}: {length}\r\n"
    return head.encode() + b"\r\n" + body


# ---------------------------------------------------------------------------- datagrams


def test_split_head() -> None:
    lines, rest = split_head(b"\r\n\r\nA x SIP/2.0\r\nB: 1\r\n\r\nbody\r\n\r\nmore")
    assert (lines, rest) == (["A x SIP/2.0", "B: 1"], b"body\r\n\r\nmore")
    assert split_head(b"A\nB: 1\n\nbody") == (["A", "B: 1"], b"body")
    assert split_head(b"A\r\nB: 1\nC: 2\r\n\r\nx") == (["A", "B: 1", "C: 2"], b"x")
    assert split_head(b"A\nB: 1\n\nx\r\n\r\ny") == (["A", "B: 1"], b"x\r\n\r\ny")
    assert split_head(b"A\r\nB: 1\r\n") == (["A", "B: 1"], b"")
    for empty in (b"", b"\r\n", b"\r\n\r\n\r\n"):
        with pytest.raises(SipParseError, match="Empty message"):
            split_head(empty)
    with pytest.raises(SipParseError) as info:
        split_head(b"x" * (MAX_MESSAGE_SIZE + 1))
    assert info.value.too_large


def test_datagram_body() -> None:
    assert datagram_body(None, b"rest") == b"rest"
    assert datagram_body("2", b"rest") == b"re"
    assert datagram_body(" 0 ", b"rest") == b""
    assert datagram_body("0004", b"rest") == b"rest"
    with pytest.raises(SipParseError, match="Content-Length mismatch"):
        datagram_body("5", b"rest")
    for bad in ("-1", "x", "", "99999999999999999999999"):
        with pytest.raises(SipParseError, match="Bad Content-Length"):
            datagram_body(bad, b"rest")


# ---------------------------------------------------------------------------- streams


def test_one_message_per_feed() -> None:
    framer = StreamFramer()
    data = message(b"hello")
    assert framer.feed(data) == [data]
    assert framer.buffered == 0
    msg = parse_message(data)
    assert isinstance(msg, Request) and msg.body == b"hello"


def test_byte_by_byte_and_several_per_feed() -> None:
    stream = message(b"one") + b"\r\n\r\n" + message() + message(b"three!")
    framer = StreamFramer()
    out: list[bytes | KeepAlive] = []
    for i in range(len(stream)):
        out += framer.feed(stream[i : i + 1])
    assert out == [message(b"one"), KEEPALIVE, message(), message(b"three!")]
    assert StreamFramer().feed(stream) == out


def test_missing_content_length_means_no_body() -> None:
    # RFC 3261 §18.3: mandatory on streams; without it the body cannot be delimited.
    framer = StreamFramer()
    head = message(length="")
    assert framer.feed(head + b"OPTIONS") == [head]
    assert framer.buffered == len(b"OPTIONS")


def test_compact_and_folded_content_length() -> None:
    assert StreamFramer().feed(message(b"abc", name="l")) == [message(b"abc", name="l")]
    folded = message(b"abcd", length="\r\n 4")
    assert StreamFramer().feed(folded) == [folded]
    assert parse_message(folded).body == b"abcd"


def test_keepalives() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [KEEPALIVE]
    assert framer.feed(b"\r\n") == []  # could be the first half of a ping
    assert framer.feed(b"\r\n") == [KEEPALIVE]
    assert framer.feed(b"\r\n\r") == []
    assert framer.feed(b"\n\r\n\r\n") == [KEEPALIVE, KEEPALIVE]
    # A lone CRLF (a pong, or §7.5 leading CRLFs) before a message is skipped.
    assert framer.feed(b"\r\n" + message()) == [message()]
    assert framer.feed(b"\n" + message()) == [message()]


def test_lf_only_messages_frame_like_parse_message() -> None:
    data = message(b"xy").replace(b"\r\n", b"\n")
    assert StreamFramer().feed(data + data) == [data, data]
    assert parse_message(data).body == b"xy"


def test_header_block_too_large_without_terminator() -> None:
    framer = StreamFramer()
    chunk = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    for _ in range(MAX_MESSAGE_SIZE // len(chunk)):
        assert framer.feed(chunk) == []
    with pytest.raises(FramingError) as info:
        framer.feed(chunk)
    assert info.value.too_large and info.value.status == 513
    with pytest.raises(FramingError):
        framer.feed(message())  # stays failed: the transport must close the connection


@pytest.mark.parametrize(
    ("length", "reason"),
    [
        (str(MAX_MESSAGE_SIZE), "Message Too Large"),
        ("-1", "Bad Content-Length"),
        ("ten", "Bad Content-Length"),
        ("5\r\nContent-Length: 5", "Multiple Content-Length"),
        ("5\r\nl: 5", "Multiple Content-Length"),
    ],
)
def test_unframeable_content_length(length: str, reason: str) -> None:
    framer = StreamFramer()
    with pytest.raises(FramingError, match=reason):
        framer.feed(message(length=length))
    assert framer.buffered == 0
