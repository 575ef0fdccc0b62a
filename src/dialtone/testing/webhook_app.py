"""A recording webhook application, a runner for it, and a fake sleeper for the client.

:class:`WebhookApp` is an ASGI app standing in for the user's web application: it records
every request (method, full URL, headers, query and form parameters, arrival and response
times), checks ``X-Twilio-Signature`` with the official twilio-python ``RequestValidator``
when the ``twilio`` package is importable (dialtone's own validator otherwise), and answers
from a route table (status, content type, body, delay)::

    app = WebhookApp(auth_token=token)
    app.route("/voice", Route(body="<Response><Say>hi</Say></Response>"))
    app.route("/cb", Route(503), Route(200))      # first 503, then 200 for ever
    async with serve(app) as running:             # or: with serve_in_thread(app) as running
        url = running.url("/voice")
        ...
        [request] = await app.wait_for(1, path="/voice")
        assert request.signature_valid

:class:`FakeSleeper` is a :class:`dialtone.webhooks.client.Sleeper` on a
:class:`~dialtone.testing.clock.FakeClock`: sleeps end only when the test advances time, so
retries, back-off and time-outs are tested without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import importlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import uvicorn

from dialtone.testing.clock import FakeClock
from dialtone.webhooks.signing import SIGNATURE_HEADER
from dialtone.webhooks.signing import validate as dialtone_validate

__all__ = [
    "FakeSleeper",
    "RecordedRequest",
    "Route",
    "RunningWebhookApp",
    "WebhookApp",
    "serve",
    "serve_in_thread",
]

T = TypeVar("T")
Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

try:
    _TWILIO: Any = importlib.import_module("twilio.request_validator")
except ImportError:  # pragma: no cover - twilio is a test dependency
    _TWILIO = None


@dataclass(frozen=True, slots=True)
class Route:
    """One scripted answer: status, body, content type, extra headers, delay (seconds)."""

    status: int = 200
    body: bytes | str = b""
    content_type: str | None = "text/xml"
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Route:
        """A redirect to ``location``."""
        return cls(status, content_type=None, headers=(("location", location),))


@dataclass(slots=True)
class RecordedRequest:
    """One request as the app saw it; ``url`` is rebuilt from Host and the raw target."""

    method: str
    url: str
    path: str
    headers: list[tuple[str, str]]
    query: list[tuple[str, str]]
    form: list[tuple[str, str]]
    body: bytes
    arrived: float
    responded: float | None = None
    signature_valid: bool | None = None

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    @property
    def params(self) -> dict[str, str]:
        """Query and form parameters in one dict (the last of a repeated name wins)."""
        return dict(self.query + self.form)


class _MultiDict(dict[str, str]):
    """Form fields for ``RequestValidator``: a dict whose ``getall`` sees repeated names."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self._pairs = pairs

    def getall(self, name: str) -> list[str]:
        """Every value of ``name``."""
        return [value for key, value in self._pairs if key == name]


class WebhookApp:
    """ASGI app that records requests and answers from a route table.

    ``auth_token`` turns on signature checks (``RecordedRequest.signature_valid``); requests
    are answered whatever the result.  A path without a route gets ``default`` (404).
    """

    def __init__(self, *, auth_token: str | None = None, default: Route | None = None) -> None:
        self.auth_token = auth_token
        self.default = default or Route(404, "not found", "text/plain")
        self.requests: list[RecordedRequest] = []
        self._routes: dict[str, list[Route]] = {}

    @property
    def validator(self) -> str:
        """Which validator checks signatures: ``"twilio"`` or ``"dialtone"``."""
        return "twilio" if _TWILIO is not None else "dialtone"

    def route(self, path: str, *answers: Route) -> None:
        """Answer requests to ``path`` with ``answers`` in turn; the last one repeats."""
        if not answers:
            raise ValueError("a route needs at least one answer")
        self._routes[path] = list(answers)

    def reset(self) -> None:
        """Forget the recorded requests and the routes (to reuse one server across tests)."""
        self.requests.clear()
        self._routes.clear()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The requests recorded for ``path``, in arrival order."""
        return [request for request in self.requests if request.path == path]

    async def wait_for(
        self, count: int, *, path: str | None = None, within: float = 5.0
    ) -> list[RecordedRequest]:
        """Wait (at most ``within`` seconds) until ``count`` requests (to ``path``) arrived."""
        end = time.monotonic() + within
        while True:  # polled: the app may run in another thread (serve_in_thread)
            if (found := self._arrived(count, path, end)) is not None:
                return found
            await asyncio.sleep(0.005)

    def wait_for_sync(
        self, count: int, *, path: str | None = None, within: float = 5.0
    ) -> list[RecordedRequest]:
        """:meth:`wait_for` for synchronous tests (the app runs in :func:`serve_in_thread`)."""
        end = time.monotonic() + within
        while True:
            if (found := self._arrived(count, path, end)) is not None:
                return found
            time.sleep(0.005)

    def _arrived(self, count: int, path: str | None, end: float) -> list[RecordedRequest] | None:
        found = list(self.requests) if path is None else self.requests_to(path)
        if len(found) >= count:
            return found
        if time.monotonic() > end:
            seen = ", ".join(f"{r.method} {r.url}" for r in found) or "none"
            where = path or "any path"
            raise TimeoutError(f"expected {count} requests to {where}; got {len(found)}: {seen}")
        return None

    def _answer(self, path: str) -> Route:
        answers = self._routes.get(path)
        if not answers:
            return self.default
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point (HTTP only)."""
        if scope["type"] != "http":
            return
        arrived = time.monotonic()
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        host = next((v for k, v in headers if k == "host"), "")
        target = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{scope['scheme']}://{host}{target.decode('latin-1')}" + (
            f"?{query}" if query else ""
        )
        content_type = next((v for k, v in headers if k == "content-type"), "")
        form: list[tuple[str, str]] = []
        if content_type.split(";")[0].strip() == "application/x-www-form-urlencoded":
            form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        record = RecordedRequest(
            method=scope["method"],
            url=url,
            path=scope["path"],
            headers=headers,
            query=parse_qsl(query, keep_blank_values=True),
            form=form,
            body=bytes(body),
            arrived=arrived,
        )
        record.signature_valid = self._check(record)
        self.requests.append(record)
        route = self._answer(record.path)
        if route.delay > 0:
            await asyncio.sleep(route.delay)
        payload = route.body.encode("utf-8") if isinstance(route.body, str) else route.body
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in route.headers]
        if route.content_type is not None:
            out.append((b"content-type", route.content_type.encode("latin-1")))
        out.append((b"content-length", str(len(payload)).encode("ascii")))
        await send({"type": "http.response.start", "status": route.status, "headers": out})
        await send({"type": "http.response.body", "body": payload})
        record.responded = time.monotonic()

    def _check(self, record: RecordedRequest) -> bool | None:
        given = record.header(SIGNATURE_HEADER)
        if self.auth_token is None:
            return None
        if given is None:
            return False
        form = record.form if record.method == "POST" else []
        if _TWILIO is not None:
            validator = _TWILIO.RequestValidator(self.auth_token)
            return bool(validator.validate(record.url, _MultiDict(form), given))
        return dialtone_validate(self.auth_token, record.url, form, given)


@dataclass(slots=True)
class RunningWebhookApp:
    """A :class:`WebhookApp` listening on ``host:port``."""

    app: WebhookApp
    host: str
    port: int
    server: uvicorn.Server = field(repr=False)

    @property
    def base_url(self) -> str:
        """``http://host:port`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return self.base_url + path


class _Server(uvicorn.Server):
    """uvicorn without signal handling: the test process keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _prepare(app: WebhookApp, host: str) -> tuple[_Server, socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="off",
        loop="asyncio",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    return _Server(config), sock


@contextlib.asynccontextmanager
async def serve(app: WebhookApp, *, host: str = "127.0.0.1") -> AsyncIterator[RunningWebhookApp]:
    """Run ``app`` under uvicorn on a free port of ``host`` in a task of the running loop."""
    server, sock = _prepare(app, host)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        end = time.monotonic() + 5
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("webhook app stopped before it started")
            if time.monotonic() > end:
                raise RuntimeError("webhook app did not start within 5 s")
            await asyncio.sleep(0.005)
        yield RunningWebhookApp(app, host, sock.getsockname()[1], server)
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 5)
        finally:
            sock.close()


@contextlib.contextmanager
def serve_in_thread(app: WebhookApp, *, host: str = "127.0.0.1") -> Iterator[RunningWebhookApp]:
    """Run ``app`` under uvicorn on a free port of ``host`` in a background thread."""
    server, sock = _prepare(app, host)
    thread = threading.Thread(
        target=asyncio.run, args=(server.serve(sockets=[sock]),), name="webhook-app", daemon=True
    )
    thread.start()
    try:
        end = time.monotonic() + 5
        while not server.started:
            if not thread.is_alive() or time.monotonic() > end:
                raise RuntimeError("webhook app did not start within 5 s")
            time.sleep(0.005)
        yield RunningWebhookApp(app, host, sock.getsockname()[1], server)
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


class FakeSleeper:
    """A :class:`~dialtone.webhooks.client.Sleeper` whose time moves only when told.

    ``sleep`` waits until :meth:`advance` (or :meth:`run`) moves the clock past its deadline.
    Between steps the loop is given a few dozen turns, which is enough for code that waits
    only on this sleeper and on in-memory transports (``httpx.MockTransport``).
    """

    _TURNS = 100

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = 0

    def monotonic(self) -> float:
        """The fake clock's reading."""
        return self.clock.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has advanced by ``seconds`` (one loop turn when <= 0)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        self._count += 1
        heapq.heappush(self._sleepers, (self.monotonic() + seconds, self._count, future))
        await future

    def deadlines(self) -> list[float]:
        """When the sleeps now pending end, earliest first."""
        return sorted(d for d, _, fut in self._sleepers if not fut.done())

    async def settle(self) -> None:
        """Give the event loop a few dozen turns without moving time."""
        for _ in range(self._TURNS):
            await asyncio.sleep(0)

    def _wake(self) -> None:
        now = self.monotonic()
        while self._sleepers and (self._sleepers[0][0] <= now or self._sleepers[0][2].done()):
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking each sleep at its own deadline in order."""
        target = self.monotonic() + seconds
        while True:
            await self.settle()
            pending = self.deadlines()
            if not pending or pending[0] > target:
                break
            self.clock.advance_to(pending[0])
            self._wake()
        self.clock.advance_to(target)
        self._wake()
        await self.settle()

    async def run(self, awaitable: Awaitable[T], *, limit: float = 3600.0) -> T:
        """Await ``awaitable``, jumping the clock to each next deadline while it waits.

        Raises RuntimeError when it waits on something other than this sleeper, and
        TimeoutError after ``limit`` fake seconds.
        """
        task = asyncio.ensure_future(awaitable)
        end = self.monotonic() + limit
        try:
            while True:
                await self.settle()
                if task.done():
                    return task.result()
                pending = self.deadlines()
                if not pending:
                    raise RuntimeError("blocked on something other than the fake sleeper")
                if pending[0] > end:
                    raise TimeoutError(f"not done after {limit} fake seconds")
                self.clock.advance_to(pending[0])
                self._wake()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
