"""The native HTTP/1.1 client of plain ``http://`` webhooks (dialtone.webhooks.http11).

Every exchange runs against a real asyncio server on 127.0.0.1 in the test process, which
records the bytes it received and the connections it accepted; nothing waits on a wall
clock: servers and tests hand over with events.  The tests without fixtures run again on
uvloop (``test_on_uvloop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any

import pytest
import uvloop

from dialtone import __version__
from dialtone.webhooks import http11
from dialtone.webhooks.http11 import (
    ConnectFailed,
    ConnectionPool,
    ConnectTimeout,
    ExchangeFailed,
    HttpFailure,
    Response,
    request_target,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
LIMIT = 1024


def ok(body: bytes = b"ok", *headers: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    return version + b" 200 OK\r\n" + head + b"Content-Length: %d\r\n\r\n" % len(body) + body


class Conn:
    """The server side of one accepted connection."""

    def __init__(self, server: Server, index: int, reader: asyncio.StreamReader) -> None:
        self.server, self.index, self.reader = server, index, reader
        self.closed_by_peer = asyncio.Event()

    async def read_request(self) -> bytes:
        """One whole request (head and Content-Length body), recorded on the server."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        request = head + await self.reader.readexactly(length)
        self.server.requests.append(request)
        self.server.arrived.set()
        return request

    async def wait_closed_by_peer(self) -> None:
        """Return once the client closed this connection (EOF or reset)."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass
        self.closed_by_peer.set()


Handler = Callable[[Conn, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A TCP server on 127.0.0.1 whose connections run ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.conns: list[Conn] = []
        self.arrived = asyncio.Event()
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        conn = Conn(self, len(self.conns), reader)
        self.conns.append(conn)
        try:
            await self.handler(conn, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[Server]:
    server = Server(handler)
    listener = await asyncio.start_server(server._connection, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for task in server.tasks:
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
        await listener.wait_closed()


def replies(*answers: bytes, close: bool = False) -> Handler:
    """A keep-alive handler: the n-th request of the server gets ``answers[n]`` (the last
    repeats); with ``close`` each connection is closed after its first answer."""

    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        while True:
            await conn.read_request()
            n = len(conn.server.requests) - 1
            writer.write(answers[min(n, len(answers) - 1)])
            await writer.drain()
            if close:
                return

    return handler


@contextlib.asynccontextmanager
async def pool_for(*answers: bytes, **options: Any) -> AsyncIterator[tuple[ConnectionPool, Server]]:
    async with serve(replies(*answers)) as server, ConnectionPool(**options) as pool:
        yield pool, server


async def get(pool: ConnectionPool, url: str, max_body: int = LIMIT) -> Response:
    return await pool.request("GET", url, [], None, connect_timeout=5, max_body=max_body)


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition()`` holds (a few iterations; 5 s at most)."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - the state is the client's, with no event
            await asyncio.sleep(0)


UVLOOP: list[Callable[[], Coroutine[Any, Any, None]]] = []


def both_loops(
    test: Callable[[], Coroutine[Any, Any, None]],
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Mark a test without fixtures to run on uvloop too."""
    UVLOOP.append(test)
    return test


# --- requests as the server receives them --------------------------------------------------


@both_loops
async def test_get_round_trip_bytes_on_the_wire() -> None:
    async with pool_for(ok(b"hello", b"X-Multi: 1", b"x-multi: 2"), user_agent="ua/1") as (
        pool,
        server,
    ):
        response = await pool.request(
            "GET",
            server.url("/voice?CallSid=CA1&To=a b"),
            [("Accept", "text/xml")],
            None,
            connect_timeout=5,
            max_body=LIMIT,
        )
    assert server.requests == [
        b"GET /voice?CallSid=CA1&To=a%%20b HTTP/1.1\r\n"
        b"Host: 127.0.0.1:%d\r\nUser-Agent: ua/1\r\nAccept: text/xml\r\n\r\n" % server.port
    ]
    assert response == Response(
        200,
        (("x-multi", "1"), ("x-multi", "2"), ("content-length", "5")),
        b"hello",
        False,
    )
    assert response.header("x-multi") == "2" and response.header("content-type") is None


@both_loops
async def test_post_round_trip_with_body_and_empty_post() -> None:
    async with pool_for(OK) as (pool, server):
        form = b"A=1&B=%2B2"
        headers = [("Content-Type", "application/x-www-form-urlencoded"), ("X-Sig", "abc=")]
        response = await pool.request(
            "POST", server.url("/cb"), headers, form, connect_timeout=5, max_body=LIMIT
        )
        empty = await pool.request(
            "POST", server.url("/cb"), [], None, connect_timeout=5, max_body=LIMIT
        )
    host = b"Host: 127.0.0.1:%d\r\n" % server.port
    ua = f"User-Agent: dialtone/{__version__}\r\n".encode()
    assert server.requests == [
        b"POST /cb HTTP/1.1\r\n" + host + ua + b"Content-Length: 10\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nX-Sig: abc=\r\n\r\n" + form,
        b"POST /cb HTTP/1.1\r\n" + host + ua + b"Content-Length: 0\r\n\r\n",
    ]
    assert (response.status, response.body, empty.body) == (200, b"ok", b"ok")


async def test_host_header_omits_port_80_and_brackets_ipv6() -> None:
    pool = ConnectionPool(user_agent="u")
    data = pool._encode("GET", "/", request_target_host("http://[::1]:80/"), [], None)
    assert data == b"GET / HTTP/1.1\r\nHost: [::1]\r\nUser-Agent: u\r\n\r\n"
    data = pool._encode("GET", "/", request_target_host("http://[::1]:8080/"), [], None)
    assert data.startswith(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n")


def request_target_host(url: str) -> str:
    return http11._split(url)[4]


async def test_the_callers_user_agent_replaces_the_default() -> None:
    async with pool_for(OK) as (pool, server):
        await pool.request(
            "GET", server.url(), [("user-agent", "mine")], None, connect_timeout=5, max_body=9
        )
    assert b"User-Agent" not in server.requests[0] and b"user-agent: mine\r\n" in server.requests[0]


@pytest.mark.parametrize(
    "headers",
    [
        [("X-A", "1\r\nX-Injected: 2")],
        [("X-A\n", "1")],
        [("Host", "elsewhere")],
        [("Content-Length", "3")],
        [("Transfer-Encoding", "chunked")],
        [("Connection", "close")],
    ],
)
async def test_unsendable_headers_are_value_errors(headers: list[tuple[str, str]]) -> None:
    async with ConnectionPool() as pool:
        with pytest.raises(ValueError, match="header"):
            await pool.request(
                "GET", "http://127.0.0.1:9/", headers, None, connect_timeout=1, max_body=9
            )


@pytest.mark.parametrize("method", ["GE T", "GET\r\n", "", "PÖST"])
async def test_invalid_methods_are_value_errors(method: str) -> None:
    async with ConnectionPool() as pool:
        with pytest.raises(ValueError, match="method"):
            await pool.request(
                method, "http://127.0.0.1:9/", [], None, connect_timeout=1, max_body=9
            )


def test_a_user_agent_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        ConnectionPool(user_agent="a\r\nX-Injected: 1")


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/", "ftp://h/", "h/x", "http:///x", "http://h:99999/", "http://h\n/"]
)
async def test_urls_that_cannot_be_requested_are_value_errors(url: str) -> None:
    async with ConnectionPool() as pool:
        with pytest.raises(ValueError, match=r"URL|port|http"):
            await get(pool, url)


# --- request targets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://app.test/voice", ("http", "app.test", 80, "/voice")),
        ("http://App.TEST", ("http", "app.test", 80, "/")),
        ("HTTP://h:8080?a=1", ("http", "h", 8080, "/?a=1")),
        ("http://h/p?", ("http", "h", 80, "/p?")),
        ("http://h:80/x#frag", ("http", "h", 80, "/x")),
        ("http://u:pw@h/x", ("http", "h", 80, "/x")),
        ("http://h/a b?c d=e f", ("http", "h", 80, "/a%20b?c%20d=e%20f")),
        ("http://h/%41%2f%zz%?q=%20", ("http", "h", 80, "/%41%2f%zz%?q=%20")),
        ("http://h/é?ü=€", ("http", "h", 80, "/%C3%A9?%C3%BC=%E2%82%AC")),
        ('http://h/"<>`{}?"<>`{}', ("http", "h", 80, "/%22%3C%3E%60%7B%7D?%22%3C%3E`{}")),
        ("http://h/a/./b/../c", ("http", "h", 80, "/a/c")),
        ("http://h/a?b?c&d=/", ("http", "h", 80, "/a?b?c&d=/")),
        ("http://[::1]:8080/x", ("http", "::1", 8080, "/x")),
        ("http://[2001:DB8::1]/x", ("http", "2001:DB8::1", 80, "/x")),
        ("http://münchen.de/", ("http", "xn--mnchen-3ya.de", 80, "/")),
        ("https://h/x", ("https", "h", 443, "/x")),
    ],
)
def test_request_target(url: str, expected: tuple[str, str, int, str]) -> None:
    assert request_target(url) == expected


def test_request_target_agrees_with_httpx() -> None:
    httpx = pytest.importorskip("httpx")
    for url in [
        "http://Example.COM:81/a b/../c?x=1 2&y=é#frag",
        'http://h/a"<>`{}|\\^?a"<>`{}|\\^\'',
        "http://[::1]/%7e~%2F?%",
        "http://h/a;b=c,d/~x!$&'()*+:@[]",
    ]:
        sent = httpx.Request("GET", url).url
        port = sent.port or 80
        assert request_target(url) == ("http", sent.raw_host.decode(), port, sent.raw_path.decode())


@pytest.mark.parametrize(
    "url", ["http://[::1/", "http://[::g]/", "http://1.2.3.999/", "http://h:x/", "http://:80/"]
)
def test_request_target_rejects(url: str) -> None:
    with pytest.raises(ValueError, match=r"invalid|host|port"):
        request_target(url)


# --- keep-alive -------------------------------------------------------------------------------


@both_loops
async def test_keep_alive_reuses_one_connection() -> None:
    async with pool_for(ok(b"1"), ok(b"2"), ok(b"3")) as (pool, server):
        bodies = [(await get(pool, server.url(f"/{n}"))).body for n in range(3)]
        stats = pool.stats()
    assert bodies == [b"1", b"2", b"3"] and len(server.conns) == 1
    assert stats == {"requests": 3, "opened": 1, "reused": 2, "retried": 0, "idle": 1}


@pytest.mark.parametrize(
    ("answer", "reused"),
    [
        (ok(b"x", b"Connection: close"), False),
        (ok(b"x", b"Connection: Keep-Alive, Close"), False),
        (ok(b"x", version=b"HTTP/1.0"), False),
        (ok(b"x", b"Connection: keep-alive", version=b"HTTP/1.0"), True),
        (ok(b"x", b"Connection: keep-alive"), True),
        (ok(b"x") + b"garbage", False),  # bytes past the response
    ],
)
async def test_when_a_connection_is_reused(answer: bytes, reused: bool) -> None:
    async with pool_for(answer) as (pool, server):
        first = await get(pool, server.url())
        second = await get(pool, server.url())
    assert first.body == second.body == b"x"
    assert len(server.conns) == (1 if reused else 2)


async def test_http10_response_status_and_headers() -> None:
    answer = b"HTTP/1.0 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"
    async with pool_for(answer) as (pool, server):
        response = await get(pool, server.url())
    assert (response.status, response.body) == (404, b"nope")


@both_loops
async def test_server_closing_an_idle_connection_is_noticed() -> None:
    async with serve(replies(OK, close=True)) as server, ConnectionPool() as pool:
        await get(pool, server.url())
        await until(lambda: pool.stats()["idle"] == 0)  # the EOF took it out of the pool
        response = await get(pool, server.url())
    assert response.body == b"ok" and len(server.conns) == 2
    assert pool.stats()["retried"] == 0


@both_loops
async def test_stale_keep_alive_race_is_retried_once_on_a_new_connection() -> None:
    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        await conn.read_request()
        if conn.index == 0 and len(conn.server.requests) == 1:
            writer.write(OK)
            await conn.read_request()
            return  # closes as the second request arrives, before any byte of an answer
        writer.write(ok(b"fresh"))
        await writer.drain()
        await conn.wait_closed_by_peer()

    async with serve(handler) as server, ConnectionPool() as pool:
        await get(pool, server.url())
        response = await get(pool, server.url())
        stats = pool.stats()
    assert response.body == b"fresh" and len(server.conns) == 2 and len(server.requests) == 3
    assert (stats["opened"], stats["reused"], stats["retried"]) == (2, 1, 1)


async def test_a_new_connection_closed_before_any_answer_is_not_retried() -> None:
    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        await conn.read_request()

    async with serve(handler) as server, ConnectionPool() as pool:
        with pytest.raises(ExchangeFailed, match="closed before any response"):
            await get(pool, server.url())
    assert len(server.conns) == 1


async def test_no_retry_once_a_response_byte_arrived() -> None:
    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        await conn.read_request()
        if len(conn.server.requests) == 1:
            writer.write(OK)
            await conn.read_request()
            writer.write(b"HTTP/1.1 200")  # and closes

    async with serve(handler) as server, ConnectionPool() as pool:
        await get(pool, server.url())
        with pytest.raises(ExchangeFailed, match="before a complete response header"):
            await get(pool, server.url())
    assert len(server.conns) == 1 and pool.stats()["retried"] == 0


async def test_idle_connections_past_idle_timeout_are_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(http11, "_clock", lambda: now[0])
    async with pool_for(OK, idle_timeout=10.0) as (pool, server):
        await get(pool, server.url())
        now[0] += 9.0
        await get(pool, server.url())  # reused
        now[0] += 10.5
        await get(pool, server.url())  # the idle one is too old: closed, a new one
        await until(lambda: _peer_closed(server, 0))
    assert len(server.conns) == 2 and pool.stats()["reused"] == 1


def _peer_closed(server: Server, index: int) -> bool:
    return server.conns[index].reader.at_eof()


async def test_max_idle_per_host_closes_the_oldest() -> None:
    gate = asyncio.Event()

    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        while True:
            await conn.read_request()
            if len(conn.server.requests) >= 3:
                gate.set()
            await gate.wait()
            writer.write(OK)

    async with serve(handler) as server, ConnectionPool(max_idle_per_host=2) as pool:
        await asyncio.gather(*(get(pool, server.url()) for _ in range(3)))
        assert pool.stats()["idle"] == 2 and len(server.conns) == 3
        await until(lambda: sum(_peer_closed(server, i) for i in range(3)) == 1)


@both_loops
async def test_concurrent_requests_use_separate_connections() -> None:
    both_arrived = asyncio.Event()

    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        while True:
            await conn.read_request()
            if len(conn.server.requests) == 2:
                both_arrived.set()
            await both_arrived.wait()  # answer only once both requests are in
            writer.write(ok(b"%d" % conn.index))

    async with serve(handler) as server, ConnectionPool() as pool:
        first, second = await asyncio.gather(get(pool, server.url()), get(pool, server.url()))
        assert {first.body, second.body} == {b"0", b"1"}
        assert pool.stats()["idle"] == 2
        third = await get(pool, server.url())
    assert third.body in (b"0", b"1") and len(server.conns) == 2


# --- response framing -------------------------------------------------------------------------


@both_loops
async def test_chunked_body_with_extensions_and_trailers() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n"
        b"0\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n"
    )
    async with pool_for(answer) as (pool, server):
        first = await get(pool, server.url())
        second = await get(pool, server.url())
    assert first.body == b"hello 0123456789" and not first.overflow
    assert first.header("transfer-encoding") == "chunked" and first.header("x-trailer") is None
    assert second.body == first.body and len(server.conns) == 1


@contextlib.contextmanager
def received_pieces() -> Iterator[list[bytes]]:
    """Record every ``data_received`` of the client's connections while in the block."""
    seen: list[bytes] = []
    original = http11._Connection.data_received

    def spy(self: http11._Connection, data: bytes) -> None:
        seen.append(data)
        original(self, data)

    http11._Connection.data_received = spy  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        http11._Connection.data_received = original  # type: ignore[method-assign]


def in_pieces(seen: list[bytes], *pieces: bytes, requests: int = 1) -> Handler:
    """A handler answering ``requests`` requests with ``pieces``, each written once the
    client received the one before (so each reaches ``data_received`` alone)."""

    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        for _ in range(requests):
            await conn.read_request()
            for piece in pieces:
                count = len(seen)
                writer.write(piece)
                await until(lambda count=count: len(seen) > count)
        await conn.wait_closed_by_peer()

    return handler


async def test_chunked_body_arriving_byte_by_byte() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
    )
    with received_pieces() as seen:
        pieces = [bytes([byte]) for byte in answer]
        async with serve(in_pieces(seen, *pieces, requests=2)) as server, ConnectionPool() as pool:
            response = await get(pool, server.url())
            again = await get(pool, server.url())
    assert response.body == again.body == b"abcde" and len(server.conns) == 1
    assert len(seen) == 2 * len(answer)


async def test_chunked_body_with_bare_lf_line_endings() -> None:
    answer = b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n2;x\nde\n0\n\n"
    async with pool_for(answer) as (pool, server):
        response = await get(pool, server.url())
        assert pool.stats()["idle"] == 1
    assert response.body == b"abcde"


@pytest.mark.parametrize(
    "pieces",
    [
        (b"HTTP/1.1 200 OK\r", b"\nContent-Len", b"gth: 6\r\n\r", b"\nab", b"cdef"),
        (
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n",
            b"abcdef",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\n", b"abcdef"),  # a bare LF blank line
        (b"HTTP/1.1 200 OK\nContent-Length: 6\n", b"\nabc", b"def"),
    ],
    ids=["split-everywhere", "interim-first", "crlf-then-lf", "bare-lf"],
)
async def test_content_length_response_in_pieces(pieces: tuple[bytes, ...]) -> None:
    with received_pieces() as seen:
        async with serve(in_pieces(seen, *pieces)) as server, ConnectionPool() as pool:
            response = await get(pool, server.url())
            assert pool.stats()["idle"] == 1
    assert (response.status, response.body) == (200, b"abcdef")
    assert len(seen) == len(pieces)


async def test_unsolicited_bytes_on_an_idle_connection_drop_it() -> None:
    with received_pieces() as seen:

        async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
            await conn.read_request()
            writer.write(OK)
            if conn.index == 0:
                await until(lambda: len(seen) == 1)
                writer.write(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            await conn.wait_closed_by_peer()

        async with serve(handler) as server, ConnectionPool() as pool:
            await get(pool, server.url())
            await server.conns[0].closed_by_peer.wait()  # the client dropped it
            assert pool.stats()["idle"] == 0
            assert (await get(pool, server.url())).body == b"ok"
    assert len(server.conns) == 2


@both_loops
async def test_close_delimited_body() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<Response/>"
    async with serve(replies(answer, close=True)) as server, ConnectionPool() as pool:
        response = await get(pool, server.url())
        assert pool.stats()["idle"] == 0
        await get(pool, server.url())
    assert response.body == b"<Response/>" and not response.overflow and len(server.conns) == 2


async def test_transfer_encoding_other_than_chunked_reads_to_the_end() -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcd"
    async with serve(replies(answer, close=True)) as server, ConnectionPool() as pool:
        response = await get(pool, server.url())
    assert response.body == b"abcd"


async def test_bare_lf_line_endings_are_accepted() -> None:
    async with pool_for(b"HTTP/1.1 200 OK\nContent-Length: 2\nX: y\n\nok") as (pool, server):
        response = await get(pool, server.url())
    assert (response.body, response.header("x")) == (b"ok", "y")


@pytest.mark.parametrize("length", [b"", b"Content-Length: 10\r\n"], ids=["bare", "with-length"])
@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_keep_the_connection(status: int, length: bytes) -> None:
    answer = b"HTTP/1.1 %d X\r\n%b\r\n" % (status, length)
    async with pool_for(answer, OK) as (pool, server):
        response = await get(pool, server.url())
        after = await get(pool, server.url())
    assert (response.status, response.body, response.overflow) == (status, b"", False)
    assert after.body == b"ok" and len(server.conns) == 1


async def test_head_without_content_length_keeps_the_connection() -> None:
    async with pool_for(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n", OK) as (pool, server):
        head = await pool.request("HEAD", server.url(), [], None, connect_timeout=5, max_body=9)
        after = await get(pool, server.url())
    assert (head.body, after.body, len(server.conns)) == (b"", b"ok", 1)


@both_loops
async def test_head_has_no_body_and_keeps_the_connection() -> None:
    async with pool_for(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", OK) as (pool, server):
        head = await pool.request("HEAD", server.url(), [], None, connect_timeout=5, max_body=9)
        after = await get(pool, server.url())
    assert (head.status, head.body, head.header("content-length")) == (200, b"", "10")
    assert after.body == b"ok" and len(server.conns) == 1
    assert server.requests[0].startswith(b"HEAD / HTTP/1.1\r\n")


@both_loops
async def test_interim_1xx_responses_are_skipped() -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"
    )
    async with pool_for(answer) as (pool, server):
        response = await get(pool, server.url())
    assert (response.status, response.body, response.header("link")) == (201, b"done", None)


@pytest.mark.parametrize("length", [LIMIT, LIMIT - 1])
async def test_a_body_of_max_body_bytes_is_no_overflow(length: int) -> None:
    async with pool_for(ok(b"x" * length)) as (pool, server):
        response = await get(pool, server.url())
    assert len(response.body) == length and not response.overflow


# --- overflow ---------------------------------------------------------------------------------


@both_loops
async def test_overflow_by_content_length_does_not_read_the_body() -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 100
    async with pool_for(big, OK) as (pool, server):
        response = await get(pool, server.url())
        after = await get(pool, server.url())
    assert (response.status, response.body, response.overflow) == (200, b"", True)
    assert after.body == b"ok" and len(server.conns) == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"100\r\n"
        + b"c" * 256
        + b"\r\n"
        + (b"400\r\n" + b"d" * 1024 + b"\r\n") * 4
        + b"0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n" + b"c" * 256 + b"d" * 4096,
    ],
    ids=["chunked", "close-delimited"],
)
async def test_overflow_of_a_streamed_body(answer: bytes) -> None:
    async with pool_for(answer, OK) as (pool, server):
        response = await get(pool, server.url())
        assert pool.stats()["idle"] == 0
        after = await get(pool, server.url())
    assert response.overflow and response.body == b"c" * 256 + b"d" * (LIMIT - 256)
    assert after.body == b"ok" and len(server.conns) == 2


@both_loops
async def test_overflow_of_an_endless_body_stops_reading() -> None:
    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        await conn.read_request()
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        while True:  # until the client closes
            writer.write(b"<" * 65536)
            await writer.drain()

    async with serve(handler) as server, ConnectionPool() as pool:
        response = await get(pool, server.url(), max_body=64 * 1024)
    assert response.overflow and len(response.body) == 64 * 1024


# --- broken exchanges ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (b"garbage\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 099 Low\r\n\r\n", "malformed status line"),
        (b"HTTP/2 200 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n", "folding"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed response header"),
        (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "malformed response header"),
        (b"HTTP/1.1 200 OK\r\n: x\r\n\r\n", "malformed response header"),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "control character"),
        (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "control character"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX", "CRLF"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad\r\n\r\n", "trailer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 5000, "too long"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1" + b"0" * 16 + b"\r\n", "size"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + b"t" * 70000,
            "trailer section is over 65536 bytes",
        ),
    ],
)
async def test_malformed_responses_are_exchange_failures(answer: bytes, match: str) -> None:
    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        await conn.read_request()
        writer.write(answer)
        await conn.wait_closed_by_peer()

    async with serve(handler) as server, ConnectionPool() as pool:
        with pytest.raises(ExchangeFailed, match=match):
            await get(pool, server.url())
        await server.conns[0].closed_by_peer.wait()  # the client closed the connection
        assert pool.stats()["idle"] == 0


async def test_repeated_equal_content_length_is_accepted() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok"
    async with pool_for(answer) as (pool, server):
        assert (await get(pool, server.url())).body == b"ok"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (64 * 1024),  # and no end in sight
    ],
    ids=["complete", "unterminated"],
)
async def test_header_section_over_64_kib(answer: bytes) -> None:
    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        await conn.read_request()
        writer.write(answer)
        await conn.wait_closed_by_peer()

    async with serve(handler) as server, ConnectionPool() as pool:
        with pytest.raises(ExchangeFailed, match="over 65536 bytes"):
            await get(pool, server.url(), max_body=10**6)


@pytest.mark.parametrize(
    ("partial", "match"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", "after 4 of 10 body bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "chunked body"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "before a complete response header"),
    ],
)
async def test_server_closing_mid_response(partial: bytes, match: str) -> None:
    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        await conn.read_request()
        writer.write(partial)

    async with serve(handler) as server, ConnectionPool() as pool:
        with pytest.raises(ExchangeFailed, match=match) as caught:
            await get(pool, server.url())
    assert str(caught.value).startswith(f"127.0.0.1:{server.port}: ")
    assert len(server.conns) == 1


@pytest.mark.parametrize(
    "partial",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", b"HTTP/1.1 200 OK\r\n\r\nto the end"],
    ids=["content-length", "close-delimited"],
)
async def test_connection_reset_mid_response_is_exchange_failed(partial: bytes) -> None:
    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        await conn.read_request()
        writer.write(partial)
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()  # RST

    async with serve(handler) as server, ConnectionPool() as pool:
        with pytest.raises(ExchangeFailed):
            await get(pool, server.url())


# --- connecting -------------------------------------------------------------------------------


@both_loops
async def test_connection_refused_is_connect_failed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = sock.getsockname()[1]
        async with ConnectionPool() as pool:
            with pytest.raises(ConnectFailed, match=f"127.0.0.1:{port}") as caught:
                await get(pool, f"http://127.0.0.1:{port}/")
    assert isinstance(caught.value.__cause__, OSError)
    assert isinstance(caught.value, HttpFailure)


@both_loops
async def test_unresolvable_host_is_connect_failed_caused_by_gaierror() -> None:
    async with ConnectionPool() as pool:
        with pytest.raises(ConnectFailed, match=r"nonexistent\.invalid") as caught:
            await pool.request(
                "GET", "http://nonexistent.invalid/", [], None, connect_timeout=10, max_body=9
            )
    assert isinstance(caught.value.__cause__, socket.gaierror)


async def test_host_names_are_resolved() -> None:
    async with pool_for(OK) as (pool, server):
        response = await get(pool, f"http://localhost:{server.port}/")
    assert response.body == b"ok"
    assert server.requests[0].startswith(b"GET / HTTP/1.1\r\nHost: localhost:%d\r\n" % server.port)


async def test_ipv6_literal() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    server = Server(replies(OK))
    listener = await asyncio.start_server(server._connection, "::1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with ConnectionPool() as pool:
            response = await get(pool, f"http://[::1]:{port}/v6")
    finally:
        listener.close()
        for task in server.tasks:
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
        await listener.wait_closed()
    assert response.body == b"ok"
    assert server.requests[0].startswith(b"GET /v6 HTTP/1.1\r\nHost: [::1]:%d\r\n" % port)


async def test_connect_timeout_against_a_full_backlog() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: once the backlog is full, SYNs go unanswered
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            async with ConnectionPool() as pool:
                with pytest.raises(ConnectTimeout, match="within 200 ms"):
                    await pool.request(
                        "GET",
                        f"http://127.0.0.1:{port}/",
                        [],
                        None,
                        connect_timeout=0.2,
                        max_body=9,
                    )
        finally:
            for filler in fillers:
                filler.close()


async def test_connect_timeout_when_connecting_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    started = asyncio.Event()

    async def hang(*args: object, **kwargs: object) -> object:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError

    monkeypatch.setattr(loop, "create_connection", hang)
    async with ConnectionPool() as pool:
        with pytest.raises(ConnectTimeout, match=r"127\.0\.0\.1:9 within 1 ms"):
            await pool.request(
                "GET", "http://127.0.0.1:9/", [], None, connect_timeout=0.001, max_body=9
            )
    assert started.is_set() and pool.stats()["opened"] == 0


# --- cancellation and closing ----------------------------------------------------------------


@both_loops
async def test_cancelled_mid_response_closes_its_connection() -> None:
    half_sent = asyncio.Event()

    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        await conn.read_request()
        if conn.index == 0:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal")
            await writer.drain()
            half_sent.set()
            await conn.wait_closed_by_peer()
            return
        writer.write(OK)
        await conn.wait_closed_by_peer()

    received = asyncio.Event()
    original = http11._Connection.data_received

    def spy(self: http11._Connection, data: bytes) -> None:
        original(self, data)
        received.set()

    http11._Connection.data_received = spy  # type: ignore[method-assign]
    try:
        async with serve(handler) as server, ConnectionPool() as pool:
            task = asyncio.create_task(get(pool, server.url()))
            await half_sent.wait()
            await received.wait()  # the client holds part of the response
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert pool.stats()["idle"] == 0
            await server.conns[0].closed_by_peer.wait()  # the half-read connection was closed
            response = await get(pool, server.url())
    finally:
        http11._Connection.data_received = original  # type: ignore[method-assign]
    assert response.body == b"ok" and len(server.conns) == 2


async def test_timeout_wrapper_before_any_answer() -> None:
    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        await conn.read_request()
        if conn.index == 0:
            await conn.wait_closed_by_peer()  # never answers
            return
        writer.write(OK)
        await conn.wait_closed_by_peer()

    async with serve(handler) as server, ConnectionPool() as pool:
        task = asyncio.create_task(get(pool, server.url()))
        await server.arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.conns[0].closed_by_peer.wait()
        assert (await get(pool, server.url())).body == b"ok"
        assert pool.stats()["idle"] == 1


async def test_cancelled_while_connecting_leaves_nothing() -> None:
    async with pool_for(OK) as (pool, server):
        task = asyncio.create_task(get(pool, server.url()))
        await asyncio.sleep(0)  # the request is connecting
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.stats()["idle"] == 0
        assert (await get(pool, server.url())).body == b"ok"


@both_loops
async def test_aclose_closes_idle_connections_and_refuses_requests() -> None:
    async with pool_for(OK) as (pool, server):
        await get(pool, server.url())
        await pool.aclose()
        assert pool.stats()["idle"] == 0
        await until(lambda: _peer_closed(server, 0))
        with pytest.raises(RuntimeError, match="closed"):
            await get(pool, server.url())


async def test_aclose_closes_in_flight_connections_when_they_finish() -> None:
    go = asyncio.Event()

    async def handler(conn: Conn, writer: asyncio.StreamWriter) -> None:
        await conn.read_request()
        await go.wait()
        writer.write(OK)
        await conn.wait_closed_by_peer()

    async with serve(handler) as server:
        pool = ConnectionPool()
        task = asyncio.create_task(get(pool, server.url()))
        await server.arrived.wait()
        await pool.aclose()
        go.set()
        assert (await task).body == b"ok"
        await server.conns[0].closed_by_peer.wait()
        assert pool.stats()["idle"] == 0


# --- the same tests on uvloop -----------------------------------------------------------------


@pytest.mark.parametrize("test", UVLOOP, ids=[test.__name__ for test in UVLOOP])
def test_on_uvloop(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test())
