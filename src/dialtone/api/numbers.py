"""IncomingPhoneNumbers resource: numbers owned by the account (API-40, API-41)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response

from dialtone import ids
from dialtone.api import validation as v
from dialtone.api.context import Form
from dialtone.api.errors import fail, not_found
from dialtone.api.representations import rfc2822
from dialtone.api.scope import Scope, add_routes, authenticated
from dialtone.storage.models import PhoneNumber
from dialtone.storage.repository import Clients, PhoneNumbers

_PATH = "IncomingPhoneNumbers"
_CAPABILITIES = {"voice": True, "sms": False, "mms": False, "fax": False}


def number_resource(scope: Scope, number: PhoneNumber) -> dict[str, Any]:
    """The IncomingPhoneNumber representation."""
    return {
        "sid": number.sid,
        "account_sid": number.account_sid,
        "phone_number": number.phone_number,
        "friendly_name": number.friendly_name,
        "voice_url": number.voice_url,
        "voice_method": number.voice_method,
        "voice_fallback_url": number.voice_fallback_url,
        "voice_fallback_method": number.voice_fallback_method,
        "status_callback": number.status_callback,
        "status_callback_method": number.status_callback_method,
        "api_version": number.api_version,
        "capabilities": dict(_CAPABILITIES),
        "date_created": rfc2822(number.date_created),
        "date_updated": rfc2822(number.date_updated),
        "uri": scope.account_path(_PATH, number.sid),
    }


def _apply(scope: Scope, number: PhoneNumber, form: Form) -> None:
    public = scope.services.settings.effective_public_url
    if "FriendlyName" in form:
        number.friendly_name = v.friendly_name(form.get("FriendlyName"), number.phone_number)
    for param, attr in (
        ("VoiceUrl", "voice_url"),
        ("VoiceFallbackUrl", "voice_fallback_url"),
        ("StatusCallback", "status_callback"),
    ):
        if param in form:
            setattr(number, attr, v.url(param, form.get(param), public))
    for param, attr in (
        ("VoiceMethod", "voice_method"),
        ("VoiceFallbackMethod", "voice_fallback_method"),
        ("StatusCallbackMethod", "status_callback_method"),
    ):
        if param in form:
            setattr(number, attr, v.method(param, form.get(param)))
    if number.voice_fallback_url and not number.voice_url:
        fail(21405, "VoiceFallbackUrl needs a VoiceUrl")


async def _taken(scope: Scope, phone: str) -> bool:
    variants = v.number_variants(phone)
    if await PhoneNumbers(scope.session).find(scope.account.sid, variants):
        return True
    return await Clients(scope.session).login_exists(scope.account.sid, variants)


async def create_number(request: Request, account_sid: str) -> Response:
    """``POST /IncomingPhoneNumbers``."""
    async with authenticated(request, account_sid) as scope:
        form = await scope.form()
        phone = v.phone_number(form.get("PhoneNumber"))
        if await _taken(scope, phone):
            fail(21422, f"PhoneNumber {phone} is already in the account or is a Client Login")
        now = scope.services.clock.utcnow()
        number = PhoneNumber(
            sid=ids.new_sid(ids.PHONE_NUMBER),
            account_sid=scope.account.sid,
            phone_number=phone,
            friendly_name=phone,
            voice_method="POST",
            voice_fallback_method="POST",
            status_callback_method="POST",
            api_version=scope.flavour.api_version,
            date_created=now,
            date_updated=now,
        )
        _apply(scope, number, form)
        repo = PhoneNumbers(scope.session)
        repo.add(number)
        try:
            await repo.flush()
        except IntegrityError:
            fail(21422, f"PhoneNumber {phone} is already in the account")
        return scope.flavour.renderer().resource(
            "IncomingPhoneNumber", number_resource(scope, number), 201
        )


async def list_numbers(request: Request, account_sid: str) -> Response:
    """``GET /IncomingPhoneNumbers`` with filters PhoneNumber and FriendlyName, paged."""
    async with authenticated(request, account_sid) as scope:
        query = request.query_params
        page, size = v.page(query.get("Page")), v.page_size(query.get("PageSize"))
        filters: dict[str, str] = {}
        columns: dict[str, str | list[str]] = {}
        if query.get("PhoneNumber"):
            filters["PhoneNumber"] = query["PhoneNumber"]
            # "+15551234" and "15551234" name the same number (RTE-2).
            columns["phone_number"] = v.number_variants(v.phone_number(query["PhoneNumber"]))
        if query.get("FriendlyName"):
            filters["FriendlyName"] = columns["friendly_name"] = query["FriendlyName"]
        result = await PhoneNumbers(scope.session).page(
            scope.account.sid, columns, page * size, size
        )
        rows = result.rows
        items = [number_resource(scope, n) for n in rows]
        paging = scope.paging(
            scope.account_path(_PATH), filters, page, size, len(items), result.has_next
        )
        return scope.flavour.renderer().listing("incoming_phone_numbers", items, paging)


async def _load(scope: Scope, sid: str) -> PhoneNumber:
    number = await PhoneNumbers(scope.session).get(scope.account.sid, sid)
    if number is None:
        not_found("IncomingPhoneNumber", sid)
    return number


async def fetch_number(request: Request, account_sid: str, number_sid: str) -> Response:
    """``GET /IncomingPhoneNumbers/{Sid}``."""
    async with authenticated(request, account_sid) as scope:
        number = await _load(scope, number_sid)
        return scope.flavour.renderer().resource(
            "IncomingPhoneNumber", number_resource(scope, number)
        )


async def update_number(request: Request, account_sid: str, number_sid: str) -> Response:
    """``POST``/``PUT /IncomingPhoneNumbers/{Sid}``; changes apply to later calls."""
    async with authenticated(request, account_sid) as scope:
        number = await _load(scope, number_sid)
        form = await scope.form()
        if "PhoneNumber" in form:
            phone = v.phone_number(form.get("PhoneNumber"))
            if phone != number.phone_number:
                fail(20422, "PhoneNumber cannot be changed; create a new number instead")
        _apply(scope, number, form)
        number.date_updated = scope.services.clock.utcnow()
        await scope.session.flush()
        return scope.flavour.renderer().resource(
            "IncomingPhoneNumber", number_resource(scope, number)
        )


async def delete_number(request: Request, account_sid: str, number_sid: str) -> Response:
    """``DELETE /IncomingPhoneNumbers/{Sid}``."""
    async with authenticated(request, account_sid) as scope:
        number = await _load(scope, number_sid)
        await PhoneNumbers(scope.session).remove(number)
    return Response(status_code=204)


def register(app: FastAPI) -> None:
    """Add the IncomingPhoneNumbers routes."""
    base = "/Accounts/{account_sid}/" + _PATH
    add_routes(app, base, create_number, ["POST"])
    add_routes(app, base, list_numbers, ["GET"])
    add_routes(app, base + "/{number_sid}", fetch_number, ["GET"])
    add_routes(app, base + "/{number_sid}", update_number, ["POST", "PUT"])
    add_routes(app, base + "/{number_sid}", delete_number, ["DELETE"])
