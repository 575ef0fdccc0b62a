"""Calls resource, read side: list with filters and fetch (API-22, API-23).

Rows are written by the call layer (:mod:`dialtone.calls.records`).  Creating and
modifying calls (API-20, API-24, API-25) are routes of their own; they render a Call with
:func:`call_resource` too.

Date filters (``StartTime``, ``EndTime`` and, in :mod:`~dialtone.api.notifications`,
``MessageDate``) take ``YYYY-MM-DD`` in UTC, and also the ``YYYY-MM-DDTHH:MM:SSZ`` that the
twilio helper library sends.  ``X=D`` means "on the UTC day of D", ``X<=D`` (the parameter
``X<``) "before D" and ``X>=D`` (``X>``) "at or after D"; together they intersect.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from fastapi import FastAPI
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from dialtone import ids
from dialtone.api import validation as v
from dialtone.api.errors import fail, not_found
from dialtone.api.representations import rfc2822
from dialtone.api.scope import Scope, add_routes, authenticated
from dialtone.calls.records import CALL_STATUSES
from dialtone.storage.models import Call
from dialtone.storage.repository import CallFilter, Calls, TimeRange

_DAY: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INSTANT: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_NUMBER: Final = re.compile(r"^\+?[0-9]{1,32}$")
_TIMES: Final = tuple(name + op for name in ("StartTime", "EndTime") for op in ("", "<", ">"))
_FILTERS: Final = ("To", "From", "Status", "ParentCallSid", *_TIMES)


def call_resource(scope: Scope, call: Call) -> dict[str, Any]:
    """The Call representation (API-23), plus the fields twilio's ``CallInstance`` reads."""
    return {
        "sid": call.sid,
        "account_sid": call.account_sid,
        "parent_call_sid": call.parent_call_sid,
        "date_created": rfc2822(call.date_created),
        "date_updated": rfc2822(call.date_updated),
        "to": call.to,
        "to_formatted": call.to,
        "from": call.from_,
        "from_formatted": call.from_,
        "phone_number_sid": call.phone_number_sid,
        "status": call.status,
        "start_time": rfc2822(call.start_time),
        "end_time": rfc2822(call.end_time),
        "duration": None if call.duration is None else str(call.duration),
        "price": None,
        "price_unit": "USD",
        "direction": call.direction,
        "answered_by": None,
        "api_version": call.api_version,
        "forwarded_from": call.forwarded_from,
        "group_sid": None,
        "caller_name": call.caller_name,
        "queue_time": "0",
        "trunk_sid": None,
        "stir_verstat": None,
        "sip_response_code": call.sip_response_code,
        "uri": scope.account_path("Calls", call.sid),
        "subresource_uris": {
            "notifications": scope.account_path("Calls", call.sid, "Notifications"),
        },
    }


def instant(name: str, value: str) -> datetime:
    """A filter value as an aware UTC datetime: ``YYYY-MM-DD`` is that day's midnight UTC."""
    text = value.strip()
    try:
        if _DAY.match(text):
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        if _INSTANT.match(text):
            parsed = datetime.fromisoformat(text)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        pass
    fail(20422, f"{name} must be a date YYYY-MM-DD (UTC), not {value[:40]!r}")


def time_range(query: QueryParams, name: str) -> TimeRange:
    """The range selected by ``name``, ``name<`` and ``name>`` (see the module docstring)."""
    since: datetime | None = None
    before: datetime | None = None
    if query.get(name):
        moment = instant(name, query[name])
        since = datetime.combine(moment.date(), time(), UTC)
        before = since + timedelta(days=1)
    if query.get(name + "<"):
        moment = instant(name + "<", query[name + "<"])
        before = moment if before is None else min(before, moment)
    if query.get(name + ">"):
        moment = instant(name + ">", query[name + ">"])
        since = moment if since is None else max(since, moment)
    return TimeRange(since, before)


def kept_filters(query: QueryParams, names: tuple[str, ...]) -> dict[str, str]:
    """The filters given, as given: ``next_page_uri`` and friends repeat them (API-7)."""
    return {name: query[name] for name in names if query.get(name)}


def _party(value: str | None) -> list[str]:
    """Values of ``To``/``From`` that match: a number with and without its leading ``+``."""
    if not value:
        return []
    return v.number_variants(value) if _NUMBER.match(value) else [value]


def _call_filter(query: QueryParams) -> CallFilter:
    status = query.get("Status") or None
    if status is not None and status not in CALL_STATUSES:
        allowed = ", ".join(sorted(CALL_STATUSES))
        fail(20422, f"Status must be one of {allowed}, not {status[:40]!r}")
    parent = query.get("ParentCallSid") or None
    if parent is not None and not ids.is_sid(parent, ids.CALL):
        fail(20422, f"ParentCallSid must be a CallSid (CA + 32 hex digits), not {parent[:40]!r}")
    return CallFilter(
        to=_party(query.get("To")),
        from_=_party(query.get("From")),
        status=status,
        parent_call_sid=parent,
        start_time=time_range(query, "StartTime"),
        end_time=time_range(query, "EndTime"),
    )


async def list_calls(request: Request, account_sid: str) -> Response:
    """``GET /Calls`` with filters To, From, Status, ParentCallSid, StartTime, EndTime."""
    async with authenticated(request, account_sid) as scope:
        query = request.query_params
        page, size = v.page(query.get("Page")), v.page_size(query.get("PageSize"))
        where = _call_filter(query)
        filters = kept_filters(query, _FILTERS)
        result = await Calls(scope.session).search(scope.account.sid, where, page * size, size)
        items = [call_resource(scope, call) for call in result.rows]
        paging = scope.paging(
            scope.account_path("Calls"), filters, page, size, len(items), result.has_next
        )
        return scope.flavour.renderer().listing("calls", items, paging)


async def load_call(scope: Scope, call_sid: str) -> Call:
    """The call of the scope's account, or the 404 of API-4."""
    call = await Calls(scope.session).get(scope.account.sid, call_sid)
    if call is None:
        not_found("Call", call_sid)
    return call


async def fetch_call(request: Request, account_sid: str, call_sid: str) -> Response:
    """``GET /Calls/{CallSid}``."""
    async with authenticated(request, account_sid) as scope:
        call = await load_call(scope, call_sid)
        return scope.flavour.renderer().resource("Call", call_resource(scope, call))


def register(app: FastAPI) -> None:
    """Add the read routes of Calls (``POST`` is registered by :mod:`~dialtone.api.calls_write`)."""
    base = "/Accounts/{account_sid}/Calls"
    add_routes(app, base, list_calls, ["GET"])
    add_routes(app, base + "/{call_sid}", fetch_call, ["GET"])
