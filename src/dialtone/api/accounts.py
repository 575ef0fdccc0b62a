"""Accounts resource: fetch your own account, list (only) it (API-10)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from dialtone.api.representations import rfc2822
from dialtone.api.scope import Scope, add_routes, authenticated


def account_resource(scope: Scope) -> dict[str, Any]:
    """The Account representation."""
    account = scope.account
    base = "/".join((scope.flavour.prefix, "Accounts", account.sid))
    suffix = scope.flavour.suffix
    return {
        "sid": account.sid,
        "friendly_name": account.friendly_name,
        "status": account.status,
        "type": "Full",
        "auth_token": account.auth_token,
        "owner_account_sid": account.sid,
        "date_created": rfc2822(account.date_created),
        "date_updated": rfc2822(account.date_updated),
        "uri": base + suffix,
        "subresource_uris": {
            name: f"{base}/{path}{suffix}"
            for name, path in (
                ("calls", "Calls"),
                ("clients", "Clients"),
                ("incoming_phone_numbers", "IncomingPhoneNumbers"),
                ("notifications", "Notifications"),
            )
        },
    }


async def fetch_account(request: Request, account_sid: str) -> Response:
    """``GET /Accounts/{AccountSid}``."""
    async with authenticated(request, account_sid) as scope:
        return scope.flavour.renderer().resource("Account", account_resource(scope))


async def list_accounts(request: Request) -> Response:
    """``GET /Accounts``: only the authenticated account."""
    async with authenticated(request, None) as scope:
        path = f"{scope.flavour.prefix}/Accounts{scope.flavour.suffix}"
        paging = scope.paging(path, {}, 0, 50, 1, False)
        return scope.flavour.renderer().listing("accounts", [account_resource(scope)], paging)


def register(app: FastAPI) -> None:
    """Add the Accounts routes."""
    add_routes(app, "/Accounts/{account_sid}", fetch_account, ["GET"])
    add_routes(app, "/Accounts", list_accounts, ["GET"])
