"""The webhook HTTP client: one request with its timeouts, retries and redirects.

:class:`WebhookClient` owns one shared ``httpx.AsyncClient`` (a keep-alive pool sized for
hundreds of concurrent calls) and implements HOOK-1 and HOOK-4..HOOK-8:

- an *attempt* is one try from the original URL, redirects included; each connection must
  be made within ``ct``, the whole attempt must complete within ``rt`` counted from its start,
  and all attempts and waits fit in ``tt``;
- a failed attempt is retried when its class (``ct``, ``rt``, ``4xx``, ``5xx``) is listed in
  ``rp``, retries remain and ``tt`` leaves time after the wait (1 s, 2 s, 4 s, 8 s, 16 s);
- redirects are followed by hand (httpx's are off) so that each hop is signed for its own
  URL (HOOK-8, HOOK-10); 303, and 301/302 of a POST, become GET with the parameters moved to
  the query; 307/308 keep method and body; more than 10 give 11215;
- a body is streamed and reading stops past 64 KiB (11750 where RCML is expected).

Every failure is a :class:`WebhookError` carrying what a Notification needs (DOC-20).  Time
and sleeping go through a :class:`Sleeper`, so the retry and timeout logic runs on a fake
clock in tests (:class:`dialtone.testing.webhook_app.FakeSleeper`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from dialtone import __version__
from dialtone.errors import DialtoneError
from dialtone.webhooks import http11, urls
from dialtone.webhooks.signing import SIGNATURE_HEADER, requested_url, signature
from dialtone.webhooks.urls import ConnectionSettings, RequestKind, Target

__all__ = [
    "BACKOFF",
    "BODY_PREFIX",
    "MAX_BODY",
    "MAX_REDIRECTS",
    "RCML_ACCEPT",
    "CallbackOutcome",
    "Expired",
    "LoopSleeper",
    "RcmlResponse",
    "Sleeper",
    "WebhookClient",
    "WebhookError",
    "bounded",
]

T = TypeVar("T")

MAX_BODY = 64 * 1024
"""HOOK-7: the largest response body read; more is 11750 where RCML is expected."""
MAX_REDIRECTS = 10
"""HOOK-8: redirects followed per attempt; the 11th gives 11215."""
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0)
"""HOOK-6: the wait before the 2nd, 3rd, … attempt, in seconds."""
RCML_ACCEPT = "text/xml, application/xml, text/html, audio/*, text/plain"
"""HOOK-1: the ``Accept`` header of RCML fetches."""
BODY_PREFIX = 4096
"""DOC-20: how much of a response body a Notification keeps."""
DEFAULT_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
"""Connection pool: enough for hundreds of concurrent calls, each with a few lanes."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_FORM = "application/x-www-form-urlencoded"


class WebhookError(DialtoneError):
    """A webhook request that failed, with what its Notification needs (DOC-20, HOOK-7).

    ``code``: 11100, 11200, 11203, 11205, 11210, 11215, 11220, 11243, 11750, 11770 (and 15003
    for a callback the dispatcher never sent).  ``url``/``method``: the request as configured,
    without fragment; ``params``: the parameters sent; ``status``: the last HTTP status;
    ``body_prefix``: the first 4 KiB of that response's body; ``attempts``: how many were
    made; ``failure_class``: the HOOK-5 class of the last attempt (``ct``, ``rt``, ``4xx``,
    ``5xx``, or None for failures outside the classes, which are never retried).
    """

    log = 0

    def __init__(
        self,
        code: int,
        message: str,
        url: str,
        method: str,
        params: Sequence[tuple[str, str]],
        status: int | None = None,
        body_prefix: str | None = None,
        *,
        attempts: int = 1,
        failure_class: str | None = None,
    ) -> None:
        super().__init__(f"{code} {message}")
        self.code, self.message, self.url, self.method = code, message, url, method
        self.params = tuple(params)
        self.status, self.body_prefix = status, body_prefix
        self.attempts, self.failure_class = attempts, failure_class

    @property
    def call_sid(self) -> str | None:
        """The ``CallSid`` parameter of the request, for the Notification's ``call_sid``."""
        return next((value for name, value in self.params if name == "CallSid"), None)


class Sleeper(Protocol):
    """Time for the webhook client and dispatcher: a monotonic clock and waiting on it."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` on this clock."""
        ...


class LoopSleeper:
    """The real :class:`Sleeper`: the running event loop's clock and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        """The event loop's time."""
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``."""
        await asyncio.sleep(seconds)


class Expired(Exception):
    """:func:`bounded` ran out of time."""


async def bounded(sleeper: Sleeper, awaitable: Awaitable[T], seconds: float) -> T:
    """Await ``awaitable`` for at most ``seconds`` on ``sleeper``'s clock.

    On time-out it is cancelled (and awaited) and :class:`Expired` raised; a result ready
    when the time runs out still wins.  Cancelling the caller cancels both.
    """
    task = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(sleeper.sleep(max(seconds, 0.0)))
    try:
        await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, timer, return_exceptions=True)
    if task.cancelled():
        raise Expired
    return task.result()


@dataclass(frozen=True, slots=True)
class RcmlResponse:
    """A usable answer to an RCML fetch: 2xx with a non-empty body of at most 64 KiB.

    ``final_url`` is the URL of the last hop as requested (relative URLs in the document
    resolve against it, HOOK-3); ``content_type`` the raw header (DOC-2), ``""`` if absent.
    """

    final_url: str
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class CallbackOutcome:
    """How a status callback ended (CB-12): ``ok`` on a 2xx, else ``error`` says why."""

    ok: bool
    status: int | None
    attempts: int
    error: WebhookError | None = None


@dataclass(frozen=True, slots=True)
class _Reply:
    """The final response of one attempt (after redirects)."""

    url: str
    status: int
    content_type: str
    body: bytes
    overflow: bool
    redirects: int = 0


@dataclass(frozen=True, slots=True)
class _Request:
    """One logical request: what is retried and redirected."""

    target: Target
    method: str
    params: tuple[tuple[str, str], ...]
    auth_token: str
    rcml: bool

    def fail(
        self, code: int, message: str, cls: str | None = None, reply: _Reply | None = None
    ) -> WebhookError:
        """The error of this request, with the status and body prefix of ``reply``.

        The message starts with the method and URL, so a log line alone says what failed.
        """
        status = prefix = None
        if reply is not None:
            status = reply.status
            prefix = reply.body[:BODY_PREFIX].decode("utf-8", "replace") or None
        url = self.target.url
        message = f"{self.method} {url}: {message}"
        error = WebhookError(code, message, url, self.method, self.params, status, prefix)
        error.failure_class = cls
        return error


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    """True when ``exc`` or an exception of its cause/context chain is a ``kind``."""
    for _ in range(10):
        if exc is None or isinstance(exc, kind):
            return exc is not None
        exc = exc.__cause__ or exc.__context__
    return False


class WebhookClient:
    """Sends webhook requests (HOOK-1..HOOK-8, HOOK-10) over shared connection pools.

    Plain ``http://`` goes through :mod:`dialtone.webhooks.http11` (a lean keep-alive pool:
    about 50 µs of CPU a request, against about 1 ms through httpx, which was a quarter of
    the server's CPU under call load); ``https://`` through httpx.  ``sleeper`` supplies time
    and waits (default: the event loop's); ``transport`` replaces the network for both
    (``httpx.MockTransport`` in tests); ``trust_env`` lets httpx read proxy and certificate
    settings from the environment (off: webhooks go straight to the app; on, http goes
    through httpx too, so its proxy settings apply).  Use as ``async with WebhookClient() as
    client`` or call :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        sleeper: Sleeper | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = False,
        user_agent: str = f"dialtone/{__version__}",
    ) -> None:
        self._sleeper: Sleeper = sleeper or LoopSleeper()
        self._http = httpx.AsyncClient(
            transport=transport,
            limits=limits,
            verify=verify,
            trust_env=trust_env,
            follow_redirects=False,
            headers={"User-Agent": user_agent},
        )
        native = transport is None and not trust_env
        self._native = http11.ConnectionPool(user_agent=user_agent) if native else None

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self._native is not None:
            await self._native.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def fetch_rcml(
        self,
        url: str,
        method: str,
        params: Sequence[tuple[str, str]],
        *,
        auth_token: str,
        kind: RequestKind = RequestKind.RCML,
    ) -> RcmlResponse:
        """Fetch a document: a 2xx with 1 byte to 64 KiB of body, else raise WebhookError.

        ``url`` is absolute and may carry fragment overrides (HOOK-4); ``kind`` selects the
        column of HOOK-4 defaults.
        """
        request = self._request(url, method, params, auth_token, kind, rcml=True)
        reply, _ = await self._run(request)
        return RcmlResponse(reply.url, reply.status, reply.content_type, reply.body)

    async def post_callback(
        self, url: str, method: str, params: Sequence[tuple[str, str]], *, auth_token: str
    ) -> CallbackOutcome:
        """Send one status callback (GET or POST, CB-1); never raises for request failures.

        Success is any 2xx; the body is ignored (CB-12).
        """
        try:
            request = self._request(
                url, method, params, auth_token, RequestKind.CALLBACK, rcml=False
            )
            reply, attempts = await self._run(request)
        except WebhookError as exc:
            return CallbackOutcome(False, exc.status, exc.attempts, exc)
        return CallbackOutcome(True, reply.status, attempts)

    def _request(
        self,
        url: str,
        method: str,
        params: Sequence[tuple[str, str]],
        auth_token: str,
        kind: RequestKind,
        *,
        rcml: bool,
    ) -> _Request:
        method = method.upper()
        if method not in ("GET", "POST"):
            raise ValueError(f"webhook method must be GET or POST, not {method!r}")
        try:
            target = urls.prepare(url, kind)
        except urls.UrlError as exc:
            bare = urls.split_fragment(url)[0]
            raise WebhookError(exc.code, exc.message, bare, method, params, attempts=0) from None
        return _Request(target, method, tuple(params), auth_token, rcml)

    async def _run(self, request: _Request) -> tuple[_Reply, int]:
        """All attempts of ``request`` (HOOK-5, HOOK-6); the reply and the attempt count."""
        settings = request.target.settings
        deadline = self._sleeper.monotonic() + settings.total_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(request, settings, deadline), attempt
            except WebhookError as error:
                error.attempts = attempt
                if attempt > settings.retries or not settings.retries_on(error.failure_class):
                    raise
                wait = BACKOFF[min(attempt - 1, len(BACKOFF) - 1)]
                if self._sleeper.monotonic() + wait >= deadline:
                    raise  # tt leaves no time for another attempt
            await self._sleeper.sleep(wait)

    async def _attempt(
        self, request: _Request, settings: ConnectionSettings, deadline: float
    ) -> _Reply:
        """One attempt, bounded by ``rt`` from its start and by the total deadline."""
        remaining = deadline - self._sleeper.monotonic()
        total = f"total time of {settings.tt} ms (tt) elapsed before a complete response"
        if remaining <= 0:
            raise request.fail(11203, total)
        try:
            reply = await bounded(
                self._sleeper,
                self._follow(request, settings),
                min(settings.response_timeout, remaining),
            )
        except Expired:
            if remaining < settings.response_timeout:
                raise request.fail(11203, total) from None
            message = f"no complete response within {settings.rt} ms (rt)"
            raise request.fail(11205, message, "rt") from None
        return self._judge(request, reply)

    @staticmethod
    def _judge(request: _Request, reply: _Reply) -> _Reply:
        """Turn the final response of an attempt into success or a classified failure."""
        status = reply.status
        if 200 <= status < 300:
            if request.rcml and reply.overflow:
                message = f"response body is larger than {MAX_BODY} bytes"
                raise request.fail(11750, message, reply=reply)
            if request.rcml and not reply.body.strip():
                raise request.fail(11770, "response body is empty; expected RCML", reply=reply)
            return reply
        where = f" from {reply.url} after {reply.redirects} redirects" if reply.redirects else ""
        cls = "4xx" if 400 <= status < 500 else "5xx" if status >= 500 else None
        raise request.fail(11200, f"HTTP status {status}{where}; expected 2xx", cls, reply)

    async def _follow(self, request: _Request, settings: ConnectionSettings) -> _Reply:
        """Send the first hop and follow redirects (HOOK-8); return the final response."""
        method, params = request.method, request.params
        url = request.target.url
        url = urls.with_query(url, params) if method == "GET" else url
        for redirects in range(MAX_REDIRECTS + 1):
            reply, location = await self._hop(request, url, method, settings)
            if reply.status not in _REDIRECTS or location is None:
                return dataclasses.replace(reply, redirects=redirects)
            url = urls.split_fragment(urljoin(reply.url, location))[0]
            try:
                urls.check(url)
            except urls.UrlError:
                message = f"HTTP status {reply.status} redirects to unusable {location!r}"
                raise request.fail(11200, message, reply=reply) from None
            if reply.status == 303 or (reply.status in (301, 302) and method == "POST"):
                if method == "POST":  # the parameters move from the body to the query
                    url = urls.with_query(url, params)
                method = "GET"
        raise request.fail(11215, f"more than {MAX_REDIRECTS} redirects (last to {url})")

    async def _hop(
        self, request: _Request, url: str, method: str, settings: ConnectionSettings
    ) -> tuple[_Reply, str | None]:
        """One HTTP exchange, signed for its own URL; the response and its Location."""
        headers = {"Accept": RCML_ACCEPT} if request.rcml else {}
        content = None
        if method == "POST":
            headers["Content-Type"] = _FORM
            content = urls.form_body(request.params)
        if self._native is not None and url[:7].lower() == "http://":
            return await self._native_hop(request, url, method, settings, headers, content)
        timeout = httpx.Timeout(None, connect=settings.connect_timeout)
        try:
            outgoing = self._http.build_request(
                method, url, content=content, headers=headers, timeout=timeout
            )
            sent = outgoing.url
            signed = requested_url(
                sent.scheme,
                sent.raw_host.decode("ascii"),
                sent.port if sent.port is not None else urlsplit(url).port,
                sent.raw_path.decode("ascii"),
            )
            outgoing.headers[SIGNATURE_HEADER] = signature(
                request.auth_token, signed, request.params if method == "POST" else None
            )
            response = await self._http.send(outgoing, stream=True)
            try:
                body, overflow = await _read(response)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise _transport_failure(request, url, exc) from None
        content_type = response.headers.get("content-type", "")
        reply = _Reply(signed, response.status_code, content_type, body, overflow)
        return reply, response.headers.get("location")

    async def _native_hop(
        self,
        request: _Request,
        url: str,
        method: str,
        settings: ConnectionSettings,
        headers: dict[str, str],
        content: bytes | None,
    ) -> tuple[_Reply, str | None]:
        """:meth:`_hop` over the http11 pool (plain http): same headers, signing, failures."""
        assert self._native is not None
        try:
            scheme, host, _, target = http11.request_target(url)
        except ValueError as exc:
            raise request.fail(11100, f"cannot request {url!r} ({exc})") from None
        signed = requested_url(scheme, host, urlsplit(url).port, target)
        params = request.params if method == "POST" else None
        lines = [*headers.items()] if request.rcml else [("Accept", "*/*"), *headers.items()]
        lines.append((SIGNATURE_HEADER, signature(request.auth_token, signed, params)))
        try:
            response = await self._native.request(
                method,
                url,
                lines,
                content,
                connect_timeout=settings.connect_timeout,
                max_body=MAX_BODY,
            )
        except http11.HttpFailure as exc:
            raise _native_failure(request, url, exc) from None
        except ValueError as exc:
            raise request.fail(11100, f"cannot request {url!r} ({exc})") from None
        content_type = response.header("content-type") or ""
        reply = _Reply(signed, response.status, content_type, response.body, response.overflow)
        return reply, response.header("location")


def _native_failure(request: _Request, url: str, exc: http11.HttpFailure) -> WebhookError:
    """Map an http11 failure to its HOOK-7 code and HOOK-5 class (as for httpx's)."""
    if isinstance(exc, http11.ConnectTimeout):
        return _failure(request, url, exc, "timeout")
    if isinstance(exc, http11.ConnectFailed):
        return _failure(request, url, exc, "connect")
    return _failure(request, url, exc, "exchange")


def _transport_failure(request: _Request, url: str, exc: httpx.HTTPError) -> WebhookError:
    """Map an httpx exception to its HOOK-7 code and HOOK-5 class."""
    if isinstance(exc, httpx.ConnectTimeout):
        return _failure(request, url, exc, "timeout")
    if isinstance(exc, httpx.ConnectError):
        return _failure(request, url, exc, "connect")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return _failure(request, url, exc, "url")
    return _failure(request, url, exc, "exchange")


def _failure(request: _Request, url: str, exc: Exception, stage: str) -> WebhookError:
    """The WebhookError of a transport failure at ``stage``: ``timeout`` (no connection
    within ct), ``connect`` (resolve, TLS or connect failed), ``url`` (not requestable) or
    ``exchange`` (connected, but no complete response: reset, closed early, bad framing)."""
    host = urlsplit(url).hostname or url
    detail = str(exc) or type(exc).__name__
    if stage == "timeout":
        ct = request.target.settings.ct
        return request.fail(11205, f"could not connect to {host} within {ct} ms (ct)", "ct")
    if stage == "connect":
        if _caused_by(exc, socket.gaierror):
            return request.fail(11210, f"cannot resolve host {host!r} ({detail})", "ct")
        if _caused_by(exc, ssl.SSLError):
            return request.fail(11220, f"TLS handshake with {host} failed ({detail})", "ct")
        return request.fail(11205, f"could not connect to {host} ({detail})", "ct")
    if stage == "url":
        return request.fail(11100, f"cannot request {url!r} ({detail})")
    return request.fail(11205, f"no complete response from {host} ({detail})", "rt")


async def _read(response: httpx.Response) -> tuple[bytes, bool]:
    """Read at most :data:`MAX_BODY` bytes of the body; True when there was more."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        return b"", True
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            return b"".join(chunks)[:MAX_BODY], True
    return b"".join(chunks), False
