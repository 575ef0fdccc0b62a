"""Where SIP messages begin and end, in datagrams and streams (RFC 3261 §7.5, §18.3).

The header block ends at the first empty line; the body is as long as Content-Length
says.  :func:`split_head` and :func:`datagram_body` do this for one datagram (for
:func:`dialtone.sip.message.parse_message`).  On a stream, :class:`StreamFramer` buffers
what a connection delivers and returns each complete message as bytes, plus a
:data:`KEEPALIVE` marker for every RFC 5626 §4.4.1 CRLFCRLF "ping", which the transport
answers with a CRLF "pong".

A stream that cannot be framed any more (a header block longer than
:data:`~dialtone.sip.message.MAX_MESSAGE_SIZE` without its empty line, an unreadable or
duplicated Content-Length) raises :class:`~dialtone.sip.errors.FramingError`; the
transport must then close the connection, because nothing tells where the next message
starts.  The framer stays failed: every later :meth:`StreamFramer.feed` raises again.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialtone.sip.errors import FramingError, SipParseError
from dialtone.sip.headers import parse_content_length

MAX_MESSAGE_SIZE = 65535
"""Largest message accepted, in bytes (spec SIP-2: larger ones get 513 or are dropped)."""

_PING = b"\r\n\r\n"
_CRLF = b"\r\n"


def split_head(data: bytes) -> tuple[list[str], bytes]:
    """Split a datagram into its head's lines (start line first) and what follows them.

    Leading CRLFs are skipped (§7.5); lines may end in CRLF or, leniently, bare LF; a
    datagram without the empty line is all head (RFC 4475 baddn).  Header bytes decode
    as UTF-8 with ``surrogateescape``, so they never fail and re-encode to the same bytes.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError("Message Too Large", too_large=True)
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    end = data.find(_PING)
    if end >= 0:
        head = data[:end].decode("utf-8", "surrogateescape")
        lines = head.split("\r\n")
        if head.count("\n") == len(lines) - 1:  # no bare LF: the common, fast case
            return lines, data[end + 4 :]
    lf = data.find(b"\n\n")
    if lf >= 0 and (end < 0 or lf < end):
        head_bytes, rest = data[:lf], data[lf + 2 :]
    elif end >= 0:
        head_bytes, rest = data[:end], data[end + 4 :]
    else:
        head_bytes, rest = data.rstrip(b"\r\n"), b""
    if not head_bytes:
        raise SipParseError("Empty message")
    head = head_bytes.decode("utf-8", "surrogateescape")
    return [line.rstrip("\r") for line in head.split("\n")], rest


def datagram_body(content_length: str | None, rest: bytes) -> bytes:
    """Return the body of a datagram given its Content-Length value (§18.3).

    Bytes beyond Content-Length are discarded (RFC 4475 dblreq); fewer is an error
    (clerr); without Content-Length the rest of the datagram is the body (§18.3, UDP).
    """
    if content_length is None:
        return rest
    if content_length.isascii() and content_length.isdigit() and len(content_length) < 10:
        length = int(content_length)
    else:
        try:
            length = parse_content_length(content_length)
        except SipParseError:
            raise SipParseError("Bad Content-Length") from None
    if length > len(rest):
        raise SipParseError("Content-Length mismatch")
    return rest[:length]


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A CRLFCRLF keep-alive ping was received: answer with a single CRLF (RFC 5626 §4.4.1)."""


KEEPALIVE = KeepAlive()
"""The one :class:`KeepAlive` value :meth:`StreamFramer.feed` returns."""


class StreamFramer:
    """Incremental splitter of one connection's bytes into SIP messages.

    ``feed(data)`` returns, in order, the complete messages (``bytes``, exactly the
    header block plus Content-Length body octets) and :data:`KEEPALIVE` markers found so
    far; incomplete input stays buffered for the next call.
    """

    __slots__ = ("_buf", "_failed", "_scanned", "_total")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched for the end of the headers
        self._total = -1  # size of the message at the head of _buf, once its headers are in
        self._failed: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | KeepAlive]:
        """Add ``data`` from the stream; return the messages and pings now complete."""
        if self._failed is not None:
            raise self._failed
        self._buf += data
        out: list[bytes | KeepAlive] = []
        try:
            while self._next(out):
                pass
        except FramingError as err:
            self._failed = err
            self._buf.clear()
            raise
        return out

    def _next(self, out: list[bytes | KeepAlive]) -> bool:
        buf = self._buf
        # Between messages: CRLFCRLF is a ping (RFC 5626 §4.4.1); a lone CRLF is a pong
        # or one of the CRLFs a sender may put before a message (RFC 3261 §7.5).
        if buf and buf[0] in (13, 10):  # CR, LF
            if buf.startswith(_PING):
                del buf[:4]
                out.append(KEEPALIVE)
                return True
            if _PING.startswith(bytes(buf[:4])):
                return False  # maybe the start of a ping: wait for more bytes
            if buf.startswith(_CRLF):
                del buf[:2]
                return True
            if buf.startswith(b"\n"):
                del buf[:1]
                return True
        if not buf:
            return False
        total = self._total
        if total < 0:
            end, sep = self._header_end()
            if end < 0:
                if len(buf) > MAX_MESSAGE_SIZE:
                    raise FramingError("Message Too Large", too_large=True)
                return False
            total = self._total = end + sep + _content_length(bytes(buf[:end]))
            if total > MAX_MESSAGE_SIZE:
                raise FramingError("Message Too Large", too_large=True)
        if len(buf) < total:
            return False
        out.append(bytes(buf[:total]))
        del buf[:total]
        self._scanned, self._total = 0, -1
        return True

    def _header_end(self) -> tuple[int, int]:
        # Resume the search a few bytes before where the last one stopped, so a
        # terminator split across two reads is found and no byte is scanned twice more.
        buf = self._buf
        start = max(0, self._scanned - 3)
        crlf = buf.find(_PING, start)
        lf = buf.find(b"\n\n", start)
        self._scanned = len(buf)
        if lf >= 0 and (crlf < 0 or lf < crlf):
            return lf, 2
        return crlf, 4


def _content_length(head: bytes) -> int:
    # §18.3: Content-Length is mandatory on streams; a missing one is read as 0 (a body
    # cannot be delimited otherwise).  Folded lines are joined first (§7.3.1).
    lines: list[bytes] = []
    for line in head.split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b" " + line.strip(b" \t")
        else:
            lines.append(line)
    values = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.rstrip(b" \t").lower() in (b"content-length", b"l"):
            values.append(value)
    if not values:
        return 0
    if len(values) > 1:
        raise FramingError("Multiple Content-Length")  # RFC 4475 mcl01: unrecoverable
    try:
        return parse_content_length(values[0].decode("latin-1"))
    except SipParseError:
        raise FramingError("Bad Content-Length") from None
