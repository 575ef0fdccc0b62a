"""The FastAPI application: routes, Twilio-shaped error handling, health and stats."""

from __future__ import annotations

import html
import time

import structlog
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialtone import __version__
from dialtone.api import accounts, calls, calls_write, clients, notifications, numbers
from dialtone.api.context import basic_credentials, check_credentials, flavour_of
from dialtone.api.errors import CODES
from dialtone.api.scope import ApiServices, services_of
from dialtone.errors import ApiError
from dialtone.storage.repository import Accounts

log = structlog.get_logger("dialtone.api")

_HTTP_CODES = {401: 20003, 403: 20403, 404: 20404, 405: 20004}


def create_app(services: ApiServices) -> FastAPI:
    """Build the REST API over the given services."""
    app = FastAPI(
        title="dialtone",
        version=__version__,
        description="Twilio/Restcomm-compatible REST API of dialtone. Every path exists under "
        "/2010-04-01 and /restcomm/2012-04-24, with .json (JSON) or without (XML).",
    )
    app.state.services = services
    accounts.register(app)
    clients.register(app)
    numbers.register(app)
    calls.register(app)
    calls_write.register(app)
    notifications.register(app)
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/dialtone/stats.json", stats, methods=["GET"])
    app.add_api_route("/docs/errors/{code}", error_page, methods=["GET"])
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(_RequestLog)
    return app


def _error_response(request: Request, exc: ApiError) -> Response:
    public = services_of(request).settings.effective_public_url
    renderer = flavour_of(request).renderer()
    response = renderer.error(exc.code, exc.status, exc.message, f"{public}/docs/errors/{exc.code}")
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="dialtone"'
    return response


async def _api_error(request: Request, exc: ApiError) -> Response:
    return _error_response(request, exc)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    code = _HTTP_CODES.get(exc.status_code, 20422)
    if exc.status_code == 404:
        message = f"The requested resource {request.url.path} was not found"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return _error_response(request, ApiError(code, exc.status_code, message))


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    return _error_response(request, ApiError(20422, 400, "The request is malformed"))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("api.unexpected_error", path=request.url.path, method=request.method)
    return _error_response(request, ApiError(20500, 500, "Internal server error"))


class _RequestLog:
    """Pure ASGI middleware: one ``http.request`` line per HTTP request.

    Not ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` runs every request in a
    task group with memory streams, which cost about a third of the API's CPU under load.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )


async def health() -> JSONResponse:
    """``GET /health`` (no authentication, API-60)."""
    return JSONResponse({"status": "ok"})


async def stats(request: Request) -> Response:
    """``GET /dialtone/stats.json``: live counts (Basic auth, API-60)."""
    services = services_of(request)
    credentials = basic_credentials(request)
    async with services.db.session() as session:
        user = credentials[0] if credentials else ""
        check_credentials(await Accounts(session).get(user), credentials)
    return JSONResponse(dict(services.stats()))


async def error_page(code: str) -> Response:
    """``GET /docs/errors/{code}``: what an error code means (the ``more_info`` target)."""
    text = CODES.get(int(code)) if code.isdigit() else None
    if text is None:
        return HTMLResponse("<h1>Unknown error code</h1>", status_code=404)
    body = f"<h1>Error {int(code)}</h1><p>{html.escape(text)}</p>"
    return HTMLResponse(body)
