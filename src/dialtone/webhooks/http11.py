"""A lean HTTP/1.1 client on asyncio Protocols, for plain ``http://`` webhooks.

:class:`ConnectionPool` sends one request and reads its response over a kept-alive TCP
connection: per ``(host, port)`` it keeps up to ``max_idle_per_host`` idle connections and
reuses the most recent first (LIFO).  The hot path, a reused connection answering with a
``Content-Length`` body, costs one ``transport.write``, one Future and a few ``bytes``
operations on the buffer ``data_received`` fills; there are no tasks, no streams and no
regular expressions per request.  It runs on asyncio and on uvloop.

What it does:

- ``METHOD target HTTP/1.1`` with ``Host`` (``:port`` unless 80), ``User-Agent``,
  ``Content-Length`` (whenever there is a body, and ``0`` for a POST/PUT/PATCH without one)
  and then the caller's headers, in one write; targets are percent-encoded as httpx does
  (:func:`request_target`);
- responses of HTTP/1.0 and 1.1: 1xx interim responses skipped; bodies framed by
  ``Content-Length``, ``Transfer-Encoding: chunked`` (trailers read and dropped) or the end of
  the connection; none for HEAD, 204 and 304; at most ``max_body`` bytes are read, a longer
  body sets :attr:`Response.overflow` and closes the connection;
- a connection is reused unless the response says ``Connection: close``, is HTTP/1.0 without
  ``keep-alive``, ends with the connection, overflowed or left extra bytes, or the exchange
  failed or was cancelled (a cancelled :meth:`ConnectionPool.request` closes its connection);
- a reused connection that the server closed before any byte of the response (the stale
  keep-alive race) is retried once on a new connection.

What it does not do: TLS (``https``), proxies, HTTP/2, pipelining, cookies, authentication,
redirects (the caller follows them), content decoding (``Content-Encoding`` bodies are
returned as sent, so do not ask for compression), ``Expect: 100-continue``, read time-outs
(cancel the request from outside, e.g. with ``asyncio.timeout``) and a cap on the number of
open connections.  A pool belongs to the event loop it is first used on.

Failures are :class:`HttpFailure`: :class:`ConnectTimeout`, :class:`ConnectFailed` (with the
``socket.gaierror`` or ``OSError`` as ``__cause__``) and :class:`ExchangeFailed`.  A URL that
cannot be requested (not ``http``, bad host or port, control characters) raises
``ValueError``, as do headers with line breaks or framing headers set by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from dialtone import __version__

__all__ = [
    "MAX_HEAD",
    "ConnectFailed",
    "ConnectTimeout",
    "ConnectionPool",
    "ExchangeFailed",
    "HttpFailure",
    "Response",
    "request_target",
]

MAX_HEAD = 64 * 1024
"""The largest header section (status line and headers, or trailers) accepted, in bytes."""


class HttpFailure(Exception):
    """A request that got no usable response; ``str()`` says why in one line."""


class ConnectTimeout(HttpFailure):
    """No TCP connection within ``connect_timeout`` (name resolution included)."""


class ConnectFailed(HttpFailure):
    """The host did not resolve (``__cause__`` is the ``socket.gaierror``), refused the
    connection or is unreachable (``__cause__`` is the ``OSError``)."""


class ExchangeFailed(HttpFailure):
    """Connected, but the exchange broke: reset, closed before a complete response, bad
    framing or garbage, or a header section over :data:`MAX_HEAD` bytes."""


class _NoResponse(ExchangeFailed):
    """The connection ended before any byte of the response: retried once when reused."""


@dataclass(frozen=True, slots=True)
class Response:
    """A final response: ``headers`` in order, names lower-cased, values latin-1 decoded.

    ``body`` has at most ``max_body`` bytes; ``overflow`` is True when the body was longer
    (the rest was not read).
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    overflow: bool

    def header(self, name: str) -> str | None:
        """The last value of the header ``name`` (lower case), or None."""
        for key, value in reversed(self.headers):
            if key == name:
                return value
        return None


# --- request targets ------------------------------------------------------------------------

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
# The WHATWG percent-encode sets httpx uses (httpx/_urlparse.py); "%" is in both, so an
# existing %XX (and a lone "%") is kept as it is.
_QUERY_SAFE = _UNRESERVED + "".join(
    chr(i) for i in range(0x20, 0x7F) if i not in (0x20, 0x22, 0x23, 0x3C, 0x3E)
)
_PATH_SAFE = "".join(c for c in _QUERY_SAFE if c not in "?`{}")
_HOST_SAFE = _UNRESERVED + "!$&'()*+,;=" + '"`{}%|\\'
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _quote(text: str, safe: str) -> str:
    """``text`` with every character outside ``safe`` percent-encoded as UTF-8."""
    if not text.rstrip(safe):
        return text  # the usual case: nothing to encode
    return "".join(
        char if char in safe else "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        for char in text
    )


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, as httpx normalizes the path of an absolute URL."""
    if "." not in path:
        return path
    segments = path.split("/")
    if "." not in segments and ".." not in segments:
        return path
    output: list[str] = []
    for segment in segments:
        if segment == ".":
            continue
        if segment == "..":
            if output and output != [""]:
                output.pop()
        else:
            output.append(segment)
    return "/".join(output)


@lru_cache(maxsize=1024)
def _encode_host(host: str) -> str:
    """The host as it goes on the wire, without brackets; ValueError when it is invalid."""
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"invalid IPv6 host {host!r}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"invalid IPv6 host {host!r}") from None
        return host[1:-1]
    if host.isascii() and host.replace(".", "").isdigit() and host.count(".") == 3:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv4 host {host!r}") from None
        return host
    if host.isascii():
        return _quote(host.lower(), _HOST_SAFE)
    try:
        return host.lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"invalid international host name {host!r}") from None


@lru_cache(maxsize=2048)
def _split(url: str) -> tuple[str, str, int, str, str, str]:
    """(scheme, host, port, target, Host header value, "host:port" for messages)."""
    if not url.isprintable() and any(c.isascii() and not c.isprintable() for c in url):
        raise ValueError(f"URL {url!r} contains a control character")
    rest = url.partition("#")[0]
    scheme, sep, rest = rest.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        raise ValueError(f"URL {url!r} is not an absolute http(s) URL")
    end = len(rest)
    for stop in "/?":
        found = rest.find(stop)
        if 0 <= found < end:
            end = found
    authority, rest = rest[:end], rest[end:]
    authority = authority.rpartition("@")[2]  # userinfo is not sent
    if authority.startswith("["):
        close = authority.find("]")
        raw_host, port_text = authority[: close + 1], authority[close + 1 :]
        if close < 0 or (port_text and not port_text.startswith(":")):
            raise ValueError(f"invalid IPv6 host in {url!r}")
        port_text = port_text[1:]
    else:
        raw_host, _, port_text = authority.partition(":")
    if not raw_host:
        raise ValueError(f"URL {url!r} has no host")
    host = _encode_host(raw_host)
    default = _DEFAULT_PORTS[scheme]
    if not port_text:
        port = default
    elif port_text.isascii() and port_text.isdigit() and int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ValueError(f"invalid port in {url!r}")
    path, question, query = rest.partition("?")
    target = _quote(_remove_dot_segments(path), _PATH_SAFE) or "/"
    if question:
        target += "?" + _quote(query, _QUERY_SAFE)
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == default else f"{bracketed}:{port}"
    return scheme, host, port, target, host_header, f"{bracketed}:{port}"


def request_target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, target) of an absolute http(s) URL as it goes on the wire.

    ``scheme`` is lower case; ``host`` is lower-cased and IDNA-encoded when not ASCII (IPv6
    literals as written, without their brackets, which the ``Host`` header keeps; to sign the
    URL, :func:`dialtone.webhooks.signing.requested_url` adds them back); ``port`` defaults to 80
    (443 for https); ``target`` is the path (``/`` if empty, dot segments removed) and
    ``?query`` when the URL has a ``?``, with the characters a request target may not contain
    percent-encoded as httpx does: an existing ``%XX`` is kept, a space becomes ``%20``, a
    non-ASCII character its UTF-8 ``%XX``.  The fragment and any userinfo are dropped.
    ``ValueError`` when the URL cannot be requested.
    """
    scheme, host, port, target, _, _ = _split(url)
    return scheme, host, port, target


# --- the connection -------------------------------------------------------------------------

_IDLE, _HEAD, _LENGTH, _CLOSE, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS = range(8)

_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Bytes a header section may hold once CRLF became LF: HTAB, LF, SP..~ and obs-text.
_HEAD_OK = bytes([0x09, 0x0A, *range(0x20, 0x7F), *range(0x80, 0x100)])
_HEX = b"0123456789abcdefABCDEF"
_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION = 1, 2, 3
_FRAMING = {b"content-length": _CONTENT_LENGTH, b"transfer-encoding": _TRANSFER_ENCODING}
_FRAMING[b"connection"] = _CONNECTION
_NAMES: dict[bytes, str] = {}
"""Decoded header names, so the common ones are decoded once."""
_NO_BODY = frozenset({204, 304})
_MAX_CHUNK_LINE = 4096


def _parse_head(head: bytes, where: str) -> tuple[int, list[tuple[str, str]], int, bool]:
    """Parse a status line and headers (without the blank line).

    Returns (status, headers, framing, persistent): framing is the Content-Length, -1 for
    chunked or -2 for a body that ends with the connection; persistent is False when the
    response asks to close (``Connection: close``, HTTP/1.0 without ``keep-alive``, or both
    Transfer-Encoding and Content-Length).
    """
    text = head.replace(b"\r\n", b"\n")
    if text.translate(None, _HEAD_OK):
        raise ExchangeFailed(f"{where}: control character in the response header section")
    lines = text.split(b"\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if (
        not version.startswith(b"HTTP/1.")
        or len(version) != 8
        or not version[7:].isdigit()
        or len(code) != 3
        or not code.isdigit()
        or rest[3:4] not in (b"", b" ")
    ):
        raise ExchangeFailed(f"{where}: malformed status line {lines[0][:80]!r}")
    status = int(code)
    if status < 100:
        raise ExchangeFailed(f"{where}: malformed status line {lines[0][:80]!r}")
    http10 = version == b"HTTP/1.0"
    headers: list[tuple[str, str]] = []
    length = -2
    chunked = close = keep = has_te = False
    names = _NAMES
    for line in lines[1:]:
        raw_name, colon, raw_value = line.partition(b":")
        if not colon or not raw_name or raw_name.translate(None, _TCHAR):
            if line[:1] in (b" ", b"\t"):
                raise ExchangeFailed(f"{where}: obsolete line folding in the response headers")
            raise ExchangeFailed(f"{where}: malformed response header line {line[:80]!r}")
        lower = raw_name.lower()
        name = names.get(lower)
        if name is None:
            name = lower.decode("ascii")
            if len(names) < 512:
                names[lower] = name
        value = raw_value.strip(b" \t")
        headers.append((name, value.decode("latin-1")))
        kind = _FRAMING.get(lower)
        if kind is None:
            continue
        if kind == _CONTENT_LENGTH:
            if not (value.isdigit() and len(value) < 19):
                values = {v.strip(b" \t") for v in value.split(b",")}
                value = values.pop() if len(values) == 1 else b""
                if not (value.isdigit() and len(value) < 19):
                    raise ExchangeFailed(f"{where}: invalid Content-Length {raw_value[:40]!r}")
            number = int(value)
            if length >= 0 and number != length:
                raise ExchangeFailed(f"{where}: conflicting Content-Length headers")
            length = number
        elif kind == _TRANSFER_ENCODING:
            has_te = True
            codings = value.lower().split(b",")
            chunked = codings[-1].strip(b" \t") == b"chunked"
        else:
            for token in value.lower().split(b","):
                token = token.strip(b" \t")
                if token == b"close":
                    close = True
                elif token == b"keep-alive":
                    keep = True
    persistent = not close and (keep or not http10)
    if has_te:  # Transfer-Encoding overrides Content-Length (RFC 9112 §6.3): but not both
        return status, headers, -1 if chunked else -2, persistent and length < 0
    return status, headers, length, persistent


class _Connection(asyncio.Protocol):
    """One TCP connection and the state of its current exchange."""

    __slots__ = (
        "_body",
        "_buf",
        "_closed",
        "_got_bytes",
        "_head_only",
        "_headers",
        "_in_pool",
        "_keep",
        "_loop",
        "_max_body",
        "_pool",
        "_remaining",
        "_scanned",
        "_state",
        "_status",
        "_transport",
        "_waiter",
        "idle_since",
        "key",
        "where",
    )

    def __init__(
        self,
        pool: ConnectionPool,
        loop: asyncio.AbstractEventLoop,
        key: tuple[str, int],
        where: str,
    ) -> None:
        self._pool = pool
        self._loop = loop
        self.key = key
        self.where = where
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._body = bytearray()
        self._waiter: asyncio.Future[Response] | None = None
        self._state = _IDLE
        self._closed = False
        self._in_pool = False
        self._got_bytes = False
        self._head_only = False
        self._max_body = 0
        self._remaining = 0
        self._scanned = 0
        self._status = 0
        self._headers: tuple[tuple[str, str], ...] = ()
        self._keep = False
        self.idle_since = 0.0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):  # not a TCP socket
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self._got_bytes = True
        self._buf += data
        try:
            if self._state == _HEAD:
                self._read_head()
            else:
                self._read_body()
        except ExchangeFailed as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        if self._waiter is not None:
            if self._state == _CLOSE:
                self._finish(bytes(self._buf), False, False)
            else:
                self._fail(self._ended())
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None:
            if self._state == _CLOSE and exc is None:
                self._finish(bytes(self._buf), False, False)
            else:
                self._fail(self._ended(exc))
        self.close()

    # -- for the pool

    @property
    def usable(self) -> bool:
        """True while the connection is open and between exchanges."""
        transport = self._transport
        return not self._closed and transport is not None and not transport.is_closing()

    def send(self, data: bytes, head_only: bool, max_body: int) -> asyncio.Future[Response]:
        """Write a request; the Future gets its response (or fails)."""
        waiter = self._loop.create_future()
        self._waiter = waiter
        self._state = _HEAD
        self._head_only = head_only
        self._max_body = max_body
        self._got_bytes = False
        self._scanned = 0
        transport = self._transport
        assert transport is not None
        try:
            transport.write(data)
        except (RuntimeError, OSError) as exc:  # uvloop: the transport closed meanwhile
            self._fail(_NoResponse(f"{self.where}: connection closed before sending ({exc})"))
        return waiter

    def abandon(self, waiter: asyncio.Future[Response]) -> None:
        """Close the connection if ``waiter``'s exchange is still under way."""
        if self._waiter is waiter:
            self._waiter = None
            self.close()

    def close(self) -> None:
        """Close the connection (idempotent) and take it out of the pool."""
        if self._in_pool:
            self._pool._forget(self)
        if not self._closed:
            self._closed = True
            self._state = _IDLE
            self._buf.clear()
            if self._transport is not None:
                self._transport.close()

    # -- parsing

    def _read_head(self) -> None:
        buf = self._buf
        while True:
            start = self._scanned
            end = buf.find(b"\r\n\r\n", start)
            bare = buf.find(b"\n\n", start, end if end >= 0 else len(buf))
            if bare >= 0:  # a server that ends lines with a bare LF
                end, skip = bare, 2
                if buf[end - 1 : end] == b"\r":  # "...\r\n\n": CRLF lines, bare LF blank
                    end, skip = end - 1, 3
            elif end >= 0:
                skip = 4
            else:
                if len(buf) > MAX_HEAD:
                    raise ExchangeFailed(
                        f"{self.where}: response header section is over {MAX_HEAD} bytes"
                    )
                self._scanned = max(0, len(buf) - 3)
                return
            if end > MAX_HEAD:
                raise ExchangeFailed(
                    f"{self.where}: response header section is over {MAX_HEAD} bytes"
                )
            head = bytes(buf[:end])
            del buf[: end + skip]
            self._scanned = 0
            status, headers, framing, keep = _parse_head(head, self.where)
            if status < 200:
                if status == 101:
                    raise ExchangeFailed(f"{self.where}: unexpected 101 Switching Protocols")
                continue  # 100 Continue, 103 Early Hints: the final response follows
            self._status = status
            self._headers = tuple(headers)
            if self._head_only or status in _NO_BODY:
                self._finish(b"", False, keep)
                return
            if framing >= 0:
                if framing > self._max_body:
                    self._finish(b"", True, False)  # too long: not read at all
                    return
                self._remaining = framing
                self._keep = keep
                self._state = _LENGTH
                if len(buf) >= framing:
                    self._read_body()
                return
            self._keep = keep and framing == -1  # else the body ends with the connection
            self._body = bytearray()
            self._state = _CHUNK_SIZE if framing == -1 else _CLOSE
            self._read_body()
            return

    def _read_body(self) -> None:
        buf = self._buf
        state = self._state
        if state == _LENGTH:
            length = self._remaining
            if len(buf) < length:
                return
            if len(buf) == length:
                body = bytes(buf)
                buf.clear()
            else:  # more than the response: garbage or a pipelined answer we never asked for
                body = bytes(buf[:length])
                del buf[:length]
            self._finish(body, False, self._keep)
            return
        if state == _CLOSE:
            if len(buf) > self._max_body:
                self._finish(bytes(buf[: self._max_body]), True, False)
            return
        self._read_chunked()

    def _read_chunked(self) -> None:
        buf = self._buf
        body = self._body
        while True:
            state = self._state
            if state == _CHUNK_SIZE:
                newline = buf.find(b"\n")
                if newline < 0:
                    if len(buf) > _MAX_CHUNK_LINE:
                        raise ExchangeFailed(f"{self.where}: chunk size line too long")
                    return
                line = bytes(buf[:newline]).rstrip(b"\r")
                del buf[: newline + 1]
                size = line.partition(b";")[0].strip(b" \t")
                if not size or size.translate(None, _HEX) or len(size) > 15:
                    raise ExchangeFailed(f"{self.where}: invalid chunk size {line[:40]!r}")
                self._remaining = int(size, 16)
                self._state = _CHUNK_DATA if self._remaining else _TRAILERS
                self._scanned = 0
            elif state == _CHUNK_DATA:
                if not buf:
                    return
                take = min(self._remaining, len(buf))
                room = self._max_body - len(body)
                if take > room:
                    body += buf[:room]
                    self._finish(bytes(body), True, False)
                    return
                if take == len(buf):
                    body += buf
                    buf.clear()
                else:
                    body += buf[:take]
                    del buf[:take]
                self._remaining -= take
                if self._remaining:
                    return
                self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if buf[:2] == b"\r\n":
                    del buf[:2]
                elif buf[:1] == b"\n":
                    del buf[:1]
                elif buf == b"" or buf == b"\r":
                    return
                else:
                    raise ExchangeFailed(f"{self.where}: chunk not followed by CRLF")
                self._state = _CHUNK_SIZE
            else:  # _TRAILERS: header lines up to a blank line, checked and dropped
                newline = buf.find(b"\n", self._scanned)
                if newline < 0:
                    if len(buf) > MAX_HEAD:
                        raise ExchangeFailed(
                            f"{self.where}: trailer section is over {MAX_HEAD} bytes"
                        )
                    self._scanned = len(buf)
                    return
                self._scanned = 0
                line = bytes(buf[:newline]).rstrip(b"\r")
                del buf[: newline + 1]
                if not line:
                    self._finish(bytes(body), False, self._keep)
                    return
                name, colon, _ = line.partition(b":")
                if not colon or not name or name.translate(None, _TCHAR):
                    raise ExchangeFailed(f"{self.where}: malformed trailer line {line[:80]!r}")

    # -- outcomes

    def _ended(self, exc: Exception | None = None) -> ExchangeFailed:
        """The failure of an exchange whose connection ended (``exc``: the reason, if any)."""
        reason = f" ({exc})" if exc is not None else ""
        if not self._got_bytes:
            return _NoResponse(f"{self.where}: connection closed before any response{reason}")
        if self._state == _HEAD:
            return ExchangeFailed(
                f"{self.where}: connection closed before a complete response header{reason}"
            )
        if self._state == _LENGTH:
            got = f"after {len(self._buf)} of {self._remaining} body bytes"
        elif self._state == _CLOSE:
            got = f"abnormally after {len(self._buf)} body bytes"
        else:
            got = f"in the middle of a chunked body ({len(self._body)} bytes)"
        return ExchangeFailed(f"{self.where}: connection closed {got}{reason}")

    def _finish(self, body: bytes, overflow: bool, keep: bool) -> None:
        waiter = self._waiter
        assert waiter is not None
        self._waiter = None
        self._state = _IDLE
        response = Response(self._status, self._headers, body, overflow)
        if self._body:
            self._body = bytearray()
        if keep and not self._buf:
            self._pool._release(self)
        else:
            self.close()
        if not waiter.done():
            waiter.set_result(response)

    def _fail(self, exc: ExchangeFailed) -> None:
        waiter = self._waiter
        self._waiter = None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


# --- the pool -------------------------------------------------------------------------------

_clock = time.monotonic
"""The clock of idle times (a module global, so tests can replace it)."""
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ConnectionPool:
    """Plain ``http://`` requests over kept-alive connections; see the module docstring.

    Use as ``async with ConnectionPool() as pool`` or call :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        max_idle_per_host: int = 64,
        idle_timeout: float = 30.0,
        user_agent: str = f"dialtone/{__version__}",
    ) -> None:
        if "\r" in user_agent or "\n" in user_agent:
            raise ValueError("user_agent contains a line break")
        self._max_idle = max_idle_per_host
        self._idle_timeout = idle_timeout
        self._user_agent = user_agent
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._closed = False
        self._next_sweep = 0.0
        self._opened = 0
        self._reused = 0
        self._retried = 0
        self._requests = 0

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        *,
        connect_timeout: float,
        max_body: int,
    ) -> Response:
        """Send one request to an absolute ``http://`` URL and read its final response.

        Raises :class:`HttpFailure` (see the subclasses), ``ValueError`` for a URL or
        headers that cannot be sent, ``RuntimeError`` after :meth:`aclose`.  Cancelling it
        closes the connection in use.
        """
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        scheme, host, port, target, host_header, where = _split(url)
        if scheme != "http":
            raise ValueError(f"URL {url!r} is not http: only plain HTTP is supported")
        data = self._encode(method, target, host_header, headers, body)
        head_only = method == "HEAD"
        self._requests += 1
        key = (host, port)
        now = _clock()
        if now >= self._next_sweep:
            self._sweep(now)
        conn = self._checkout(key, now)
        if conn is not None:
            self._reused += 1
            waiter = conn.send(data, head_only, max_body)
            try:
                return await waiter
            except _NoResponse:
                self._retried += 1  # the server closed it as we sent: once more, on a new one
            except BaseException:
                conn.abandon(waiter)
                raise
        conn = await self._connect(key, where, connect_timeout)
        waiter = conn.send(data, head_only, max_body)
        try:
            return await waiter
        except BaseException:
            conn.abandon(waiter)
            raise

    async def aclose(self) -> None:
        """Close every idle connection; those in use are closed when their exchange ends."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn._in_pool = False
                conn.close()

    def stats(self) -> dict[str, int]:
        """Counters: ``requests``, connections ``opened`` and ``reused``, stale-connection
        ``retried``, and connections ``idle`` now."""
        return {
            "requests": self._requests,
            "opened": self._opened,
            "reused": self._reused,
            "retried": self._retried,
            "idle": sum(len(conns) for conns in self._idle.values()),
        }

    # -- internals

    def _encode(
        self,
        method: str,
        target: str,
        host_header: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
    ) -> bytes:
        """The request head and body as one ``bytes``."""
        user_agent = self._user_agent
        lines = []
        for name, value in headers:
            lower = name.lower()
            if lower in _RESERVED:
                raise ValueError(f"header {name!r} is set by the HTTP client")
            if lower == "user-agent":
                user_agent = ""
            lines.append(f"{name}: {value}\r\n")
        extra = "".join(lines)
        if extra.count("\n") != len(lines) or extra.count("\r") != len(lines):
            raise ValueError("a header name or value contains a line break")
        if not method.isascii() or not method.isalpha():
            raise ValueError(f"invalid method {method!r}")
        agent = f"User-Agent: {user_agent}\r\n" if user_agent else ""
        if body is not None:
            length = f"Content-Length: {len(body)}\r\n"
        elif method in _BODY_METHODS:
            length = "Content-Length: 0\r\n"
        else:
            length = ""
        head = f"{method} {target} HTTP/1.1\r\nHost: {host_header}\r\n{agent}{length}{extra}\r\n"
        data = head.encode("latin-1")
        return data + body if body else data

    def _checkout(self, key: tuple[str, int], now: float) -> _Connection | None:
        """The most recently used live idle connection to ``key``, or None."""
        conns = self._idle.get(key)
        while conns:
            conn = conns.pop()
            conn._in_pool = False
            if not conn.usable:
                conn.close()
                continue
            if now - conn.idle_since > self._idle_timeout:
                conn.close()  # the newest is too old: so are the rest
                for old in conns:
                    old._in_pool = False
                    old.close()
                conns.clear()
                return None
            return conn
        return None

    async def _connect(self, key: tuple[str, int], where: str, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = _Connection(self, loop, key, where)
        host, port = key
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: conn, host, port)
        except socket.gaierror as exc:
            detail = exc.strerror or str(exc)
            raise ConnectFailed(f"cannot resolve host {host!r}: {detail}") from exc
        except TimeoutError as exc:  # asyncio.timeout, or ETIMEDOUT from the system
            message = f"no connection to {where} within {timeout * 1000:.0f} ms"
            raise ConnectTimeout(message) from (exc if exc.errno else None)
        except OSError as exc:
            detail = exc.strerror or str(exc) or type(exc).__name__
            raise ConnectFailed(f"cannot connect to {where}: {detail}") from exc
        self._opened += 1
        return conn

    def _release(self, conn: _Connection) -> None:
        """Put ``conn``, between exchanges, back in the pool (or close it)."""
        if self._closed or not conn.usable:
            conn.close()
            return
        conns = self._idle.get(conn.key)
        if conns is None:
            conns = self._idle[conn.key] = []
        elif len(conns) >= self._max_idle:
            oldest = conns.pop(0)
            oldest._in_pool = False
            oldest.close()
        conn.idle_since = _clock()
        conn._in_pool = True
        conns.append(conn)

    def _forget(self, conn: _Connection) -> None:
        """Take an idle connection that closed out of the pool."""
        conn._in_pool = False
        conns = self._idle.get(conn.key)
        if conns is not None and conn in conns:
            conns.remove(conn)

    def _sweep(self, now: float) -> None:
        """Close idle connections past ``idle_timeout``; forget hosts without any."""
        self._next_sweep = now + max(min(self._idle_timeout, 30.0), 0.1)
        for key, conns in list(self._idle.items()):
            while conns and now - conns[0].idle_since > self._idle_timeout:
                old = conns.pop(0)
                old._in_pool = False
                old.close()
            if not conns:
                del self._idle[key]
