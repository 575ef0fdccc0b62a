"""Notifications resource: errors and warnings about calls, documents and webhooks (API-50).

``/Notifications`` lists the account's, ``/Calls/{CallSid}/Notifications`` one call's (404 when
the call is not the account's); both filter by ``Log`` and ``MessageDate`` (``<``, ``>``) as
in :mod:`dialtone.api.calls`.  Rows are written by :mod:`dialtone.calls.records` (DOC-20).
``log`` and ``error_code`` are strings, as Twilio sends them.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from dialtone.api import validation as v
from dialtone.api.calls import kept_filters, load_call, time_range
from dialtone.api.errors import fail, not_found
from dialtone.api.representations import rfc2822
from dialtone.api.scope import Scope, add_routes, authenticated
from dialtone.storage.models import Notification
from dialtone.storage.repository import NotificationFilter, Notifications

_FILTERS: Final = ("Log", "MessageDate", "MessageDate<", "MessageDate>")


def notification_resource(
    scope: Scope, row: Notification, *, via_call: bool = False
) -> dict[str, Any]:
    """The Notification representation; ``uri`` under the call when listed through it."""
    if via_call and row.call_sid is not None:
        uri = scope.account_path("Calls", row.call_sid, "Notifications", row.sid)
    else:
        uri = scope.account_path("Notifications", row.sid)
    return {
        "sid": row.sid,
        "account_sid": row.account_sid,
        "call_sid": row.call_sid,
        "api_version": row.api_version,
        "log": str(row.log),
        "error_code": str(row.error_code),
        "more_info": row.more_info,
        "message_text": row.message_text,
        "message_date": rfc2822(row.message_date),
        "request_url": row.request_url,
        "request_method": row.request_method,
        "request_variables": row.request_variables,
        "response_body": row.response_body,
        "date_created": rfc2822(row.date_created),
        "date_updated": rfc2822(row.date_updated),
        "uri": uri,
    }


def _filter(request: Request, call_sid: str | None) -> NotificationFilter:
    log = request.query_params.get("Log") or None
    if log is not None and log not in ("0", "1"):
        fail(20422, f"Log must be 0 (errors) or 1 (warnings), not {log[:20]!r}")
    return NotificationFilter(
        call_sid=call_sid,
        log=None if log is None else int(log),
        message_date=time_range(request.query_params, "MessageDate"),
    )


async def _listing(scope: Scope, request: Request, call_sid: str | None) -> Response:
    query = request.query_params
    page, size = v.page(query.get("Page")), v.page_size(query.get("PageSize"))
    where = _filter(request, call_sid)
    result = await Notifications(scope.session).search(scope.account.sid, where, page * size, size)
    via_call = call_sid is not None
    items = [notification_resource(scope, n, via_call=via_call) for n in result.rows]
    parts = ("Calls", call_sid, "Notifications") if call_sid is not None else ("Notifications",)
    paging = scope.paging(
        scope.account_path(*parts),
        kept_filters(query, _FILTERS),
        page,
        size,
        len(items),
        result.has_next,
    )
    return scope.flavour.renderer().listing("notifications", items, paging)


async def _load(scope: Scope, sid: str, call_sid: str | None = None) -> Notification:
    row = await Notifications(scope.session).get(scope.account.sid, sid)
    if row is None or (call_sid is not None and row.call_sid != call_sid):
        not_found("Notification", sid)
    return row


async def list_notifications(request: Request, account_sid: str) -> Response:
    """``GET /Notifications`` with filters Log and MessageDate, paged."""
    async with authenticated(request, account_sid) as scope:
        return await _listing(scope, request, None)


async def fetch_notification(request: Request, account_sid: str, notification_sid: str) -> Response:
    """``GET /Notifications/{NotificationSid}``."""
    async with authenticated(request, account_sid) as scope:
        row = await _load(scope, notification_sid)
        return scope.flavour.renderer().resource("Notification", notification_resource(scope, row))


async def list_call_notifications(request: Request, account_sid: str, call_sid: str) -> Response:
    """``GET /Calls/{CallSid}/Notifications``: the call's, with the same filters."""
    async with authenticated(request, account_sid) as scope:
        call = await load_call(scope, call_sid)
        return await _listing(scope, request, call.sid)


async def fetch_call_notification(
    request: Request, account_sid: str, call_sid: str, notification_sid: str
) -> Response:
    """``GET /Calls/{CallSid}/Notifications/{NotificationSid}`` (twilio's call-scoped fetch)."""
    async with authenticated(request, account_sid) as scope:
        call = await load_call(scope, call_sid)
        row = await _load(scope, notification_sid, call.sid)
        return scope.flavour.renderer().resource(
            "Notification", notification_resource(scope, row, via_call=True)
        )


def register(app: FastAPI) -> None:
    """Add the Notifications routes (read-only)."""
    account = "/Accounts/{account_sid}"
    add_routes(app, account + "/Notifications", list_notifications, ["GET"])
    add_routes(app, account + "/Notifications/{notification_sid}", fetch_notification, ["GET"])
    per_call = account + "/Calls/{call_sid}/Notifications"
    add_routes(app, per_call, list_call_notifications, ["GET"])
    add_routes(app, per_call + "/{notification_sid}", fetch_call_notification, ["GET"])
