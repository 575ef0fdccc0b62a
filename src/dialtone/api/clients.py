"""Clients resource: SIP users of the account (API-30..API-32)."""

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
from dialtone.sip.digest import compute_ha1
from dialtone.storage.models import Client
from dialtone.storage.repository import Clients, PhoneNumbers

_LIST_FILTERS = {"Login": "login", "FriendlyName": "friendly_name"}


def client_resource(scope: Scope, client: Client) -> dict[str, Any]:
    """The Client representation; never the password or its hashes."""
    registrations = scope.services.directory.bindings(client.sid)
    return {
        "sid": client.sid,
        "account_sid": client.account_sid,
        "api_version": client.api_version,
        "login": client.login,
        "friendly_name": client.friendly_name,
        "voice_url": client.voice_url,
        "voice_method": client.voice_method,
        "voice_fallback_url": client.voice_fallback_url,
        "voice_fallback_method": client.voice_fallback_method,
        "online": bool(registrations),
        "registrations": registrations,
        "date_created": rfc2822(client.date_created),
        "date_updated": rfc2822(client.date_updated),
        "uri": scope.account_path("Clients", client.sid),
    }


def set_password(scope: Scope, client: Client, password: str) -> None:
    """Store the password as HA1s for MD5 and SHA-256 with realm = the SIP domain (REG-1)."""
    realm = scope.services.settings.effective_domain
    client.ha1_md5 = compute_ha1(client.login, realm, password, "MD5")
    client.ha1_sha256 = compute_ha1(client.login, realm, password, "SHA-256")
    client.ha1_realm = realm


def _apply_voice(scope: Scope, client: Client, form: Form) -> None:
    public = scope.services.settings.effective_public_url
    if "FriendlyName" in form:
        client.friendly_name = v.friendly_name(form.get("FriendlyName"), client.login)
    if "VoiceUrl" in form:
        client.voice_url = v.url("VoiceUrl", form.get("VoiceUrl"), public)
    if "VoiceMethod" in form:
        client.voice_method = v.method("VoiceMethod", form.get("VoiceMethod"))
    if "VoiceFallbackUrl" in form:
        client.voice_fallback_url = v.url("VoiceFallbackUrl", form.get("VoiceFallbackUrl"), public)
    if "VoiceFallbackMethod" in form:
        client.voice_fallback_method = v.method(
            "VoiceFallbackMethod", form.get("VoiceFallbackMethod")
        )


async def create_client(request: Request, account_sid: str) -> Response:
    """``POST /Clients``."""
    async with authenticated(request, account_sid) as scope:
        form = await scope.form()
        login = v.login(form.get("Login"))
        password = v.password(form.get("Password"))
        repo = Clients(scope.session)
        if await repo.by_login(scope.account.sid, login) is not None:
            fail(20422, f"Login '{login}' already exists")
        if await PhoneNumbers(scope.session).find(scope.account.sid, v.number_variants(login)):
            fail(20422, f"Login '{login}' equals a PhoneNumber of the account")
        now = scope.services.clock.utcnow()
        client = Client(
            sid=ids.new_sid(ids.CLIENT),
            account_sid=scope.account.sid,
            login=login,
            friendly_name=login,
            voice_method="POST",
            voice_fallback_method="POST",
            api_version=scope.flavour.api_version,
            date_created=now,
            date_updated=now,
        )
        set_password(scope, client, password)
        _apply_voice(scope, client, form)
        repo.add(client)
        try:
            await repo.flush()
        except IntegrityError:
            fail(20422, f"Login '{login}' already exists")
        response = scope.flavour.renderer().resource("Client", client_resource(scope, client), 201)
    scope.services.directory.client_saved(client)
    return response


async def list_clients(request: Request, account_sid: str) -> Response:
    """``GET /Clients`` with filters Login and FriendlyName, paged."""
    async with authenticated(request, account_sid) as scope:
        query = request.query_params
        page, size = v.page(query.get("Page")), v.page_size(query.get("PageSize"))
        filters = {name: query[name] for name in _LIST_FILTERS if query.get(name)}
        columns = {_LIST_FILTERS[name]: value for name, value in filters.items()}
        result = await Clients(scope.session).page(scope.account.sid, columns, page * size, size)
        items = [client_resource(scope, c) for c in result.rows]
        paging = scope.paging(
            scope.account_path("Clients"), filters, page, size, len(items), result.has_next
        )
        return scope.flavour.renderer().listing("clients", items, paging)


async def _load(scope: Scope, client_sid: str) -> Client:
    client = await Clients(scope.session).get(scope.account.sid, client_sid)
    if client is None:
        not_found("Client", client_sid)
    return client


async def fetch_client(request: Request, account_sid: str, client_sid: str) -> Response:
    """``GET /Clients/{ClientSid}``."""
    async with authenticated(request, account_sid) as scope:
        client = await _load(scope, client_sid)
        return scope.flavour.renderer().resource("Client", client_resource(scope, client))


async def update_client(request: Request, account_sid: str, client_sid: str) -> Response:
    """``POST``/``PUT /Clients/{ClientSid}``: Login cannot change; Password replaces HA1s."""
    async with authenticated(request, account_sid) as scope:
        client = await _load(scope, client_sid)
        form = await scope.form()
        new_login = form.get("Login")
        if new_login is not None and new_login != client.login:
            fail(20422, "Login cannot be changed; create a new Client instead")
        if "Password" in form:
            set_password(scope, client, v.password(form.get("Password")))
        _apply_voice(scope, client, form)
        client.date_updated = scope.services.clock.utcnow()
        await scope.session.flush()
        response = scope.flavour.renderer().resource("Client", client_resource(scope, client))
    scope.services.directory.client_saved(client)
    return response


async def delete_client(request: Request, account_sid: str, client_sid: str) -> Response:
    """``DELETE /Clients/{ClientSid}``: its bindings go too (REG-7)."""
    async with authenticated(request, account_sid) as scope:
        client = await _load(scope, client_sid)
        await Clients(scope.session).remove(client)
        await scope.session.flush()
    scope.services.directory.client_removed(client_sid)
    return Response(status_code=204)


def register(app: FastAPI) -> None:
    """Add the Clients routes."""
    base = "/Accounts/{account_sid}/Clients"
    add_routes(app, base, create_client, ["POST"])
    add_routes(app, base, list_clients, ["GET"])
    add_routes(app, base + "/{client_sid}", fetch_client, ["GET"])
    add_routes(app, base + "/{client_sid}", update_client, ["POST", "PUT"])
    add_routes(app, base + "/{client_sid}", delete_client, ["DELETE"])
