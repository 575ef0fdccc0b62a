"""HOOK-1, HOOK-4..HOOK-8, HOOK-10: the webhook client.

Retry, back-off and time-out rules run on a fake clock over ``httpx.MockTransport``; the
wire behaviour (signatures as a server sees them, redirects, misbehaving servers) runs
against real servers on 127.0.0.1 with short, bounded time-outs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import parse_qsl

import httpx
import pytest
from twilio.request_validator import RequestValidator

from dialtone import __version__
from dialtone.testing.webhook_app import (
    FakeSleeper,
    Route,
    RunningWebhookApp,
    WebhookApp,
    serve,
    serve_in_thread,
)
from dialtone.webhooks.client import RCML_ACCEPT, WebhookClient, WebhookError
from dialtone.webhooks.urls import RequestKind

TOKEN = "0123456789abcdef0123456789abcdef"
PARAMS = [("AccountSid", "AC1"), ("CallSid", "CA1"), ("From", "+15557654321"), ("To", "client:bob")]

Step = httpx.Response | Exception | float  # a float hangs that many (fake) seconds


class Script:
    """A MockTransport handler: answers with ``steps`` in turn (the last repeats)."""

    def __init__(self, sleeper: FakeSleeper, *steps: Step) -> None:
        self.sleeper = sleeper
        self.steps = list(steps)
        self.calls: list[tuple[float, httpx.Request]] = []

    @property
    def times(self) -> list[float]:
        start = self.calls[0][0] if self.calls else 0.0
        return [t - start for t, _ in self.calls]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((self.sleeper.monotonic(), request))
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, float):
            await self.sleeper.sleep(step)
            return httpx.Response(200, text="late")
        return step


def rcml(body: str = "<Response/>", status: int = 200) -> httpx.Response:
    return httpx.Response(status, text=body, headers={"content-type": "text/xml"})


def caused(exc: httpx.HTTPError, cause: BaseException) -> httpx.HTTPError:
    exc.__cause__ = cause
    return exc


@pytest.fixture
def sleeper() -> FakeSleeper:
    return FakeSleeper()


@contextlib.asynccontextmanager
async def scripted(
    sleeper: FakeSleeper, *steps: Step
) -> AsyncIterator[tuple[WebhookClient, Script]]:
    script = Script(sleeper, *steps)
    async with WebhookClient(sleeper=sleeper, transport=httpx.MockTransport(script)) as client:
        yield client, script


def assert_signed(request: httpx.Request) -> None:
    """The official validator accepts ``request`` as the server would see it."""
    url = str(request.url)
    form = parse_qsl(request.content.decode()) if request.method == "POST" else []
    sig = request.headers["X-Twilio-Signature"]
    assert RequestValidator(TOKEN).validate(url, dict(form), sig), url


# --- HOOK-5/HOOK-6: retries and back-off, on the fake clock --------------------------------


async def test_hook6_backoff_1_2_4_8_16(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, rcml(status=503)) as (client, script):
        outcome = await sleeper.run(
            client.post_callback(
                "http://app.test/cb#rc=5&tt=60000", "POST", PARAMS, auth_token=TOKEN
            )
        )
    assert script.times == [0, 1, 3, 7, 15, 31]
    assert not outcome.ok and outcome.attempts == 6 and outcome.status == 503
    assert outcome.error is not None and outcome.error.code == 11200
    assert "503" in outcome.error.message


async def test_hook5_tt_stops_retries_that_would_not_fit(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, rcml(status=503)) as (client, script):
        outcome = await sleeper.run(
            client.post_callback(
                "http://app.test/cb#rc=5&tt=10000", "POST", PARAMS, auth_token=TOKEN
            )
        )
    assert script.times == [0, 1, 3, 7]  # the next wait (8 s) would end past tt
    assert outcome.error is not None and outcome.error.code == 11200


async def test_callback_defaults_retry_5xx_twice(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, rcml(status=503), rcml(status=502), rcml()) as (client, script):
        outcome = await sleeper.run(
            client.post_callback("http://app.test/cb", "POST", PARAMS, auth_token=TOKEN)
        )
    assert outcome.ok and outcome.attempts == 3 and outcome.status == 200
    assert script.times == [0, 1, 3]
    # retries resend the same signed request (CB-7: same SequenceNumber and Timestamp)
    bodies = {request.content for _, request in script.calls}
    assert len(bodies) == 1


async def test_callback_4xx_not_retried_by_default(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, rcml(status=404)) as (client, script):
        outcome = await sleeper.run(
            client.post_callback("http://app.test/cb", "POST", PARAMS, auth_token=TOKEN)
        )
    assert len(script.calls) == 1 and outcome.status == 404
    assert outcome.error is not None and outcome.error.failure_class == "4xx"


async def test_rcml_defaults_retry_connect_failures_once(sleeper: FakeSleeper) -> None:
    refused = httpx.ConnectError("All connection attempts failed")
    async with scripted(sleeper, refused, rcml()) as (client, script):
        response = await sleeper.run(
            client.fetch_rcml("http://app.test/voice", "POST", PARAMS, auth_token=TOKEN)
        )
    assert script.times == [0, 1] and response.status == 200
    async with scripted(sleeper, refused) as (client, script):
        with pytest.raises(WebhookError) as caught:
            await sleeper.run(
                client.fetch_rcml("http://app.test/voice", "POST", PARAMS, auth_token=TOKEN)
            )
    assert len(script.calls) == 2 and caught.value.code == 11205 and caught.value.attempts == 2


async def test_rcml_5xx_not_retried_by_default_but_with_rp(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, rcml(status=500)) as (client, script):
        with pytest.raises(WebhookError) as caught:
            await sleeper.run(
                client.fetch_rcml("http://app.test/voice", "GET", PARAMS, auth_token=TOKEN)
            )
    assert len(script.calls) == 1 and caught.value.code == 11200 and caught.value.status == 500
    async with scripted(sleeper, rcml(status=500), rcml()) as (client, script):
        await sleeper.run(
            client.fetch_rcml("http://app.test/voice#rp=5xx", "GET", PARAMS, auth_token=TOKEN)
        )
    assert len(script.calls) == 2


async def test_rp_all_retries_every_class_but_not_content_failures(sleeper: FakeSleeper) -> None:
    steps: list[Step] = [
        rcml(status=404),
        rcml(status=500),
        httpx.ReadError("reset"),
        rcml(body=""),
    ]
    async with scripted(sleeper, *steps) as (client, script):
        with pytest.raises(WebhookError) as caught:
            await sleeper.run(
                client.fetch_rcml(
                    "http://app.test/v#rp=all&rc=5&tt=60000", "POST", PARAMS, auth_token=TOKEN
                )
            )
    assert len(script.calls) == 4 and caught.value.code == 11770  # empty body: not retried


async def test_fetch_with_callback_kind_uses_that_column(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, rcml(status=503), rcml(status=503), rcml()) as (client, script):
        response = await sleeper.run(
            client.fetch_rcml(
                "http://app.test/v", "POST", PARAMS, auth_token=TOKEN, kind=RequestKind.CALLBACK
            )
        )
    assert response.status == 200 and script.times == [0, 1, 3]
    assert script.calls[0][1].headers["accept"] == RCML_ACCEPT


# --- HOOK-4/HOOK-7: rt and tt on the fake clock ---------------------------------------------


async def test_example_c6_rt_timeout_is_11205_not_retried(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, 20.0) as (client, script):
        start = sleeper.monotonic()
        with pytest.raises(WebhookError) as caught:
            await sleeper.run(
                client.fetch_rcml("http://app.test/voice", "POST", PARAMS, auth_token=TOKEN)
            )
    assert caught.value.code == 11205 and caught.value.failure_class == "rt"
    assert sleeper.monotonic() - start == 15 and len(script.calls) == 1


async def test_rt_retries_then_tt_cuts_the_last_attempt(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, 100.0) as (client, script):
        start = sleeper.monotonic()
        outcome = await sleeper.run(
            client.post_callback("http://app.test/cb#rp=rt", "POST", PARAMS, auth_token=TOKEN)
        )
    # attempt 1 at 0 (rt 15 s), wait 1 s, attempt 2 at 16, wait 2 s, attempt 3 at 33 has only
    # 12 s of tt left: tt elapses before its own rt (11203)
    assert script.times == [0, 16, 33]
    assert sleeper.monotonic() - start == 45
    assert outcome.error is not None and outcome.error.code == 11203 and outcome.attempts == 3


async def test_tt_shorter_than_rt_is_11203(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, 10.0) as (client, _):
        with pytest.raises(WebhookError) as caught:
            await sleeper.run(
                client.fetch_rcml("http://app.test/v#tt=2000", "POST", PARAMS, auth_token=TOKEN)
            )
    assert caught.value.code == 11203


async def test_a_response_within_rt_wins(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, 14.0) as (client, _):
        response = await sleeper.run(
            client.fetch_rcml("http://app.test/v", "POST", PARAMS, auth_token=TOKEN)
        )
    assert response.body == b"late"


# --- HOOK-7: failure codes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code", "cls"),
    [
        (
            caused(httpx.ConnectError("dns"), socket.gaierror(-2, "Name or service not known")),
            11210,
            "ct",
        ),
        (caused(httpx.ConnectError("tls"), ssl.SSLError(1, "WRONG_VERSION_NUMBER")), 11220, "ct"),
        (httpx.ConnectError("refused"), 11205, "ct"),
        (httpx.ConnectTimeout("slow"), 11205, "ct"),
        (httpx.ReadError("reset"), 11205, "rt"),
        (httpx.RemoteProtocolError("closed"), 11205, "rt"),
    ],
)
async def test_hook7_transport_failures(
    sleeper: FakeSleeper, exc: Exception, code: int, cls: str
) -> None:
    async with scripted(sleeper, exc) as (client, _):
        with pytest.raises(WebhookError) as caught:
            await sleeper.run(
                client.fetch_rcml("http://app.test/v#rc=0", "POST", PARAMS, auth_token=TOKEN)
            )
    assert (caught.value.code, caught.value.failure_class) == (code, cls)
    assert caught.value.url == "http://app.test/v" and caught.value.method == "POST"
    assert caught.value.params == tuple(PARAMS) and caught.value.call_sid == "CA1"


async def test_hook7_non_2xx_carries_status_and_body_prefix(sleeper: FakeSleeper) -> None:
    body = "<html>" + "x" * 10000
    async with scripted(sleeper, httpx.Response(404, text=body)) as (client, _):
        with pytest.raises(WebhookError) as caught:
            await sleeper.run(
                client.fetch_rcml("http://app.test/v", "GET", PARAMS, auth_token=TOKEN)
            )
    error = caught.value
    assert error.code == 11200 and error.status == 404
    assert error.message == "GET http://app.test/v: HTTP status 404; expected 2xx"
    assert error.body_prefix == body[:4096]


@pytest.mark.parametrize("body", [b"", b"  \r\n "])
async def test_hook7_empty_rcml_body_is_11770(sleeper: FakeSleeper, body: bytes) -> None:
    async with scripted(sleeper, httpx.Response(200, content=body)) as (client, _):
        with pytest.raises(WebhookError) as caught:
            await sleeper.run(
                client.fetch_rcml("http://app.test/v", "GET", PARAMS, auth_token=TOKEN)
            )
    assert caught.value.code == 11770


async def test_hook7_body_limit_is_64_kib(sleeper: FakeSleeper) -> None:
    exactly = httpx.Response(200, content=b"x" * 65536)
    async with scripted(sleeper, exactly, httpx.Response(200, content=b"x" * 65537)) as (client, _):
        ok = await sleeper.run(
            client.fetch_rcml("http://app.test/v", "GET", PARAMS, auth_token=TOKEN)
        )
        assert len(ok.body) == 65536
        with pytest.raises(WebhookError) as caught:
            await sleeper.run(
                client.fetch_rcml("http://app.test/v", "GET", PARAMS, auth_token=TOKEN)
            )
    assert caught.value.code == 11750


async def test_callbacks_ignore_the_body(sleeper: FakeSleeper) -> None:
    async with scripted(
        sleeper, httpx.Response(204), httpx.Response(200, content=b"y" * 70000)
    ) as (
        client,
        _,
    ):
        for _ in range(2):
            outcome = await sleeper.run(
                client.post_callback("http://app.test/cb", "POST", PARAMS, auth_token=TOKEN)
            )
            assert outcome.ok


async def test_invalid_urls_fail_before_any_request(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, rcml()) as (client, script):
        with pytest.raises(WebhookError) as caught:
            await client.fetch_rcml("http://app.test/v#ct=5", "GET", PARAMS, auth_token=TOKEN)
        assert (caught.value.code, caught.value.attempts) == (11100, 0)
        outcome = await client.post_callback(
            "http://app.test/cb#rp=x", "POST", PARAMS, auth_token=TOKEN
        )
        assert outcome.error is not None and outcome.error.code == 11243
        assert outcome.error.url == "http://app.test/cb"
        with pytest.raises(ValueError, match="GET or POST"):
            await client.fetch_rcml("http://app.test/v", "PUT", PARAMS, auth_token=TOKEN)
    assert script.calls == []


# --- HOOK-1/HOOK-8/HOOK-10: the requests themselves ----------------------------------------


async def test_hook1_post_headers_body_and_signature(sleeper: FakeSleeper) -> None:
    async with scripted(sleeper, rcml()) as (client, script):
        await sleeper.run(
            client.fetch_rcml("http://app.test/v?x=1#rc=0", "POST", PARAMS, auth_token=TOKEN)
        )
        await sleeper.run(
            client.post_callback("http://app.test/cb", "POST", PARAMS, auth_token=TOKEN)
        )
    voice, callback = (request for _, request in script.calls)
    assert str(voice.url) == "http://app.test/v?x=1"
    assert voice.headers["user-agent"] == f"dialtone/{__version__}"
    assert voice.headers["accept"] == RCML_ACCEPT
    assert voice.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(voice.content.decode()) == PARAMS
    assert "accept" not in callback.headers or callback.headers["accept"] != RCML_ACCEPT
    assert callback.headers["user-agent"] == f"dialtone/{__version__}"
    assert_signed(voice)
    assert_signed(callback)


async def test_hook8_post_302_becomes_get_with_params_in_query(sleeper: FakeSleeper) -> None:
    steps: list[Step] = [
        httpx.Response(302, headers={"location": "/next?k=v#frag"}),
        httpx.Response(307, headers={"location": "https://other.test:8443/x"}),
        rcml(),
    ]
    async with scripted(sleeper, *steps) as (client, script):
        response = await sleeper.run(
            client.fetch_rcml("http://app.test/voice", "POST", PARAMS, auth_token=TOKEN)
        )
    first, second, third = (request for _, request in script.calls)
    assert first.method == "POST"
    assert second.method == "GET" and second.content == b""
    assert str(second.url).startswith("http://app.test/next?k=v&AccountSid=AC1&")
    assert third.method == "GET" and str(third.url) == "https://other.test:8443/x"
    assert response.final_url == "https://other.test:8443/x"
    for request in (first, second, third):
        assert_signed(request)


@pytest.mark.parametrize(
    ("status", "method"), [(307, "POST"), (308, "POST"), (303, "GET"), (301, "GET")]
)
async def test_hook8_methods_after_redirect_of_a_post(
    sleeper: FakeSleeper, status: int, method: str
) -> None:
    steps: list[Step] = [httpx.Response(status, headers={"location": "/b"}), rcml()]
    async with scripted(sleeper, *steps) as (client, script):
        await sleeper.run(client.fetch_rcml("http://app.test/a", "POST", PARAMS, auth_token=TOKEN))
    hop = script.calls[1][1]
    assert hop.method == method
    if method == "POST":
        assert str(hop.url) == "http://app.test/b" and parse_qsl(hop.content.decode()) == PARAMS
    else:
        assert dict(parse_qsl(hop.url.query.decode())) == dict(PARAMS)
    assert_signed(hop)


async def test_hook8_get_redirect_follows_location_as_given(sleeper: FakeSleeper) -> None:
    steps: list[Step] = [httpx.Response(301, headers={"location": "/b?only=this"}), rcml()]
    async with scripted(sleeper, *steps) as (client, script):
        await sleeper.run(client.fetch_rcml("http://app.test/a", "GET", PARAMS, auth_token=TOKEN))
    assert str(script.calls[1][1].url) == "http://app.test/b?only=this"


async def test_hook8_more_than_10_redirects_is_11215(sleeper: FakeSleeper) -> None:
    loop = httpx.Response(302, headers={"location": "/loop"})
    async with scripted(sleeper, loop) as (client, script):
        with pytest.raises(WebhookError) as caught:
            await sleeper.run(
                client.fetch_rcml("http://app.test/loop", "GET", PARAMS, auth_token=TOKEN)
            )
    assert caught.value.code == 11215 and len(script.calls) == 11
    steps: list[Step] = [*[httpx.Response(302, headers={"location": "/r"})] * 10, rcml()]
    async with scripted(sleeper, *steps) as (client, script):
        await sleeper.run(client.fetch_rcml("http://app.test/r", "GET", PARAMS, auth_token=TOKEN))
    assert len(script.calls) == 11  # exactly 10 redirects are fine


@pytest.mark.parametrize("headers", [{}, {"location": "ftp://app.test/x"}])
async def test_hook8_unusable_redirect_is_11200(
    sleeper: FakeSleeper, headers: dict[str, str]
) -> None:
    async with scripted(sleeper, httpx.Response(302, headers=headers)) as (client, _):
        with pytest.raises(WebhookError) as caught:
            await sleeper.run(
                client.fetch_rcml("http://app.test/a", "GET", PARAMS, auth_token=TOKEN)
            )
    assert caught.value.code == 11200 and caught.value.status == 302


# --- the real wire: a recording app and misbehaving servers on 127.0.0.1 -------------------


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 running ``handler`` per connection; yields its port."""
    tasks: set[asyncio.Task[None]] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_head(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    await asyncio.sleep(30)


async def closes_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)


async def slow_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nX-Slow: " + b"y" * 100:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.02)


async def ten_megabytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n")
    chunk = b"<" * 65536
    for _ in range(160):
        writer.write(chunk)
        await writer.drain()


async def timed(awaitable: Awaitable[object]) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        await asyncio.wait_for(awaitable, 10)
    except WebhookError as exc:
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


@pytest.fixture(scope="module")
def running() -> Iterator[RunningWebhookApp]:
    """One recording app for the module, in a thread (its own loop)."""
    with serve_in_thread(WebhookApp(auth_token=TOKEN)) as running:
        yield running


@pytest.fixture
def app(running: RunningWebhookApp) -> WebhookApp:
    running.app.reset()
    return running.app


async def test_wire_post_and_get_are_signed_as_the_server_sees_them(
    running: RunningWebhookApp, app: WebhookApp
) -> None:
    app.route("/voice", Route(body="<Response/>"))
    app.route("/cb", Route(204, content_type=None))
    unicode = [*PARAMS, ("CallerName", "Zoë ☎"), ("SipHeader_X-A", "2"), ("SipHeader_X-A", "1")]
    async with serve(app) as running, WebhookClient() as client:
        response = await client.fetch_rcml(
            running.url("/voice?x=%C3%A9"), "POST", unicode, auth_token=TOKEN
        )
        assert response.status == 200 and response.body == b"<Response/>"
        assert response.content_type == "text/xml"
        outcome = await client.post_callback(
            running.url("/cb?leg=b#rc=0&ct=1000"), "GET", unicode, auth_token=TOKEN
        )
        assert outcome.ok and outcome.status == 204
    voice, callback = app.requests
    assert app.validator == "twilio"
    assert voice.signature_valid and callback.signature_valid
    assert voice.form == unicode and voice.query == [("x", "é")]
    assert voice.header("user-agent") == f"dialtone/{__version__}"
    assert voice.header("accept") == RCML_ACCEPT
    # Ex. C-2: query kept, params appended after it, no fragment sent
    assert callback.method == "GET" and callback.body == b""
    assert callback.query == [("leg", "b"), *unicode]
    assert callback.url.startswith(running.url("/cb?leg=b&AccountSid=AC1&"))
    assert "#" not in callback.url and "rc=0" not in callback.url


async def test_wire_redirect_hops_are_each_signed(
    running: RunningWebhookApp, app: WebhookApp
) -> None:
    app.route("/a", Route.redirect("/b", 302))
    app.route("/b", Route.redirect("/c", 307))
    app.route("/c", Route(body="<Response/>"))
    async with WebhookClient() as client:
        response = await client.fetch_rcml(running.url("/a"), "POST", PARAMS, auth_token=TOKEN)
    # POST→302 becomes GET with the parameters in the query; that GET's 307 keeps GET and
    # follows the Location as given (a GET has no body to keep)
    assert response.final_url == running.url("/c")
    hops = [(r.method, r.path) for r in app.requests]
    assert hops == [("POST", "/a"), ("GET", "/b"), ("GET", "/c")]
    assert all(r.signature_valid for r in app.requests)
    assert dict(app.requests[1].query) == dict(PARAMS) and app.requests[2].query == []


async def test_wire_redirect_loop_is_11215() -> None:
    app = WebhookApp(auth_token=TOKEN)  # served in this test's own loop
    app.route("/loop", Route.redirect("/loop"))
    async with serve(app) as running, WebhookClient() as client:
        error, _ = await timed(
            client.fetch_rcml(running.url("/loop"), "GET", PARAMS, auth_token=TOKEN)
        )
    assert isinstance(error, WebhookError) and error.code == 11215
    assert len(app.requests) == 11


async def test_wire_503_then_200_after_one_second(
    running: RunningWebhookApp, app: WebhookApp
) -> None:
    app.route("/cb", Route(503), Route(200))
    async with WebhookClient() as client:
        outcome = await client.post_callback(running.url("/cb"), "POST", PARAMS, auth_token=TOKEN)
    first, second = app.requests
    assert outcome.ok and outcome.attempts == 2
    assert first.body == second.body
    assert 0.9 < second.arrived - first.arrived < 2.0


async def test_wire_body_over_64_kib_with_content_length(
    running: RunningWebhookApp, app: WebhookApp
) -> None:
    app.route("/big", Route(body=b"x" * 10_000_000))
    async with WebhookClient() as client:
        error, took = await timed(
            client.fetch_rcml(running.url("/big"), "GET", PARAMS, auth_token=TOKEN)
        )
    assert isinstance(error, WebhookError) and error.code == 11750 and took < 2


async def test_wire_body_over_64_kib_streamed_stops_reading() -> None:
    async with raw_server(ten_megabytes) as port, WebhookClient() as client:
        url = f"http://127.0.0.1:{port}/big"
        error, took = await timed(client.fetch_rcml(url, "GET", PARAMS, auth_token=TOKEN))
    assert isinstance(error, WebhookError) and error.code == 11750 and took < 2


async def test_wire_never_answers_is_rt_11205() -> None:
    async with raw_server(never_answers) as port, WebhookClient() as client:
        url = f"http://127.0.0.1:{port}/voice#rt=200"
        error, took = await timed(client.fetch_rcml(url, "POST", PARAMS, auth_token=TOKEN))
    assert isinstance(error, WebhookError) and error.code == 11205 and error.failure_class == "rt"
    assert 0.15 < took < 1.5


async def test_wire_rt_counts_from_the_attempt_start_not_between_bytes() -> None:
    async with raw_server(slow_headers) as port, WebhookClient() as client:
        url = f"http://127.0.0.1:{port}/voice#rt=300"
        error, took = await timed(client.fetch_rcml(url, "POST", PARAMS, auth_token=TOKEN))
    assert isinstance(error, WebhookError) and error.code == 11205
    assert 0.25 < took < 1.5


async def test_wire_tt_before_rt_is_11203() -> None:
    async with raw_server(never_answers) as port, WebhookClient() as client:
        url = f"http://127.0.0.1:{port}/voice#rt=5000&tt=300"
        error, took = await timed(client.fetch_rcml(url, "POST", PARAMS, auth_token=TOKEN))
    assert isinstance(error, WebhookError) and error.code == 11203
    assert 0.25 < took < 1.5


async def test_wire_connection_closed_is_11205() -> None:
    async with raw_server(closes_at_once) as port, WebhookClient() as client:
        url = f"http://127.0.0.1:{port}/voice"
        error, took = await timed(client.fetch_rcml(url, "POST", PARAMS, auth_token=TOKEN))
    assert isinstance(error, WebhookError) and error.code == 11205 and error.attempts == 1
    assert took < 1


async def test_wire_connection_refused_is_11205() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        async with WebhookClient() as client:
            outcome = await client.post_callback(
                f"http://127.0.0.1:{port}/cb#rc=0", "POST", PARAMS, auth_token=TOKEN
            )
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.failure_class) == (11205, "ct")


async def test_wire_connect_timeout_is_ct_11205() -> None:
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
            async with WebhookClient() as client:
                url = f"http://127.0.0.1:{port}/v#ct=200&rc=0"
                error, took = await timed(client.fetch_rcml(url, "GET", PARAMS, auth_token=TOKEN))
        finally:
            for filler in fillers:
                filler.close()
    assert isinstance(error, WebhookError) and error.code == 11205 and error.failure_class == "ct"
    assert "within 200 ms" in error.message and took < 1.5


async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)  # the TLS ClientHello: answer it as a plain HTTP server would
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


async def test_wire_tls_failure_is_11220() -> None:
    async with raw_server(plain_http) as port, WebhookClient() as client:
        url = f"https://127.0.0.1:{port}/v#rc=0"
        error, took = await timed(client.fetch_rcml(url, "GET", PARAMS, auth_token=TOKEN))
    assert isinstance(error, WebhookError) and error.code == 11220
    assert took < 2


# --- the recording app itself ---------------------------------------------------------------


def test_recording_app_checks_signatures_and_scripts_answers(
    running: RunningWebhookApp, app: WebhookApp
) -> None:
    app.route("/s", Route(503), Route(200, body="ok", content_type="text/plain"))
    with httpx.Client() as http:
        unsigned = http.post(running.url("/s"), data={"A": "1"})
        signed = http.post(
            running.url("/s"),
            data={"A": "1"},
            headers={
                "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(
                    running.url("/s"), {"A": "1"}
                )
            },
        )
        missing = http.get(running.url("/nowhere"))
    assert (unsigned.status_code, signed.status_code, signed.text) == (503, 200, "ok")
    assert missing.status_code == 404
    first, second, third = app.wait_for_sync(3, within=5)
    assert (first.signature_valid, second.signature_valid) == (False, True)
    assert first.form == [("A", "1")] and third.path == "/nowhere"
    assert first.responded is not None and first.responded >= first.arrived
