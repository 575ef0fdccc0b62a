"""What every handler starts with: services, a transaction, the account and the flavour."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from dialtone.api.context import (
    RESTCOMM_PREFIX,
    TWILIO_PREFIX,
    Flavour,
    Form,
    basic_credentials,
    check_credentials,
    flavour_of,
)
from dialtone.calls.control import CallControl
from dialtone.clock import Clock
from dialtone.config import Settings
from dialtone.errors import ApiError
from dialtone.storage.database import Database
from dialtone.storage.models import Account, Client
from dialtone.storage.repository import Accounts


class ClientDirectory(Protocol):
    """What the API needs from the registrar: live bindings and change notices."""

    def bindings(self, client_sid: str) -> list[dict[str, Any]]:
        """The Client's registrations as ``{contact, transport, source, expires, user_agent}``."""
        ...

    def client_saved(self, client: Client) -> None:
        """A Client was created or changed (credentials may differ)."""
        ...

    def client_removed(self, client_sid: str) -> None:
        """A Client was deleted: forget its bindings (REG-7)."""
        ...


class NoDirectory:
    """A directory with no registrar behind it (nothing is ever online)."""

    def bindings(self, client_sid: str) -> list[dict[str, Any]]:
        """No bindings."""
        return []

    def client_saved(self, client: Client) -> None:
        """Nothing to update."""

    def client_removed(self, client_sid: str) -> None:
        """Nothing to forget."""


ACCOUNT_TTL = 5.0
"""Seconds an authenticated account is reused without reading it again; every committed
write request through this API forgets it at once, so this only bounds how long a change
made past the API (another server on the same database) takes to apply."""


@dataclass
class ApiServices:
    """The objects the API layer works with, wired by the composition root."""

    db: Database
    settings: Settings
    clock: Clock
    directory: ClientDirectory = field(default_factory=NoDirectory)
    stats: Callable[[], Mapping[str, int]] = field(default=lambda: {})
    changed: Callable[[], None] = field(default=lambda: None)
    """Called after every committed write request (POST/PUT/DELETE): the call layer's
    cached routing answers are dropped, so the next call sees the change."""
    call_control: CallControl | None = None
    """Places and steers calls (API-20, API-24, API-25); None: those requests answer 503."""
    has_outbound_proxy: bool | None = None
    """Whether number destinations can be dialled (API-20's 21214); None: whether
    ``settings.outbound_proxy`` is set."""

    _accounts: dict[str, tuple[Account, float]] = field(default_factory=dict, repr=False)

    def known_account(self, sid: str) -> Account | None:
        """The account ``sid`` as read within the last :data:`ACCOUNT_TTL` s, if it was."""
        entry = self._accounts.get(sid)
        if entry is None or self.clock.monotonic() - entry[1] > ACCOUNT_TTL:
            return None
        return entry[0]

    def remember_account(self, account: Account) -> None:
        """Keep ``account`` for :meth:`known_account` (at most a few: one per server)."""
        if len(self._accounts) >= 16:
            self._accounts.clear()
        # A copy outside any session: a rollback expires the attributes of loaded instances.
        keys = [prop.key for prop in Account.__mapper__.column_attrs]
        copy = Account(**{key: getattr(account, key) for key in keys})
        self._accounts[account.sid] = (copy, self.clock.monotonic())

    def committed(self) -> None:
        """After a committed write request: forget cached accounts, then :attr:`changed`."""
        self._accounts.clear()
        self.changed()

    @property
    def can_dial_numbers(self) -> bool:
        """Whether a number ``To`` has somewhere to go (``--outbound-proxy``)."""
        if self.has_outbound_proxy is None:
            return self.settings.outbound_proxy is not None
        return self.has_outbound_proxy


@dataclass
class Scope:
    """One authenticated request inside one database transaction."""

    services: ApiServices
    session: AsyncSession
    account: Account
    flavour: Flavour
    request: Request

    def account_path(self, *parts: str) -> str:
        """``/2010-04-01/Accounts/AC…/Clients/CL….json`` for this request's flavour."""
        path = "/".join((self.flavour.prefix, "Accounts", self.account.sid, *parts))
        return path + self.flavour.suffix

    async def form(self) -> Form:
        """The request's form body."""
        return Form.parse(await self.request.body())

    def paging(
        self,
        path: str,
        filters: Mapping[str, str],
        page: int,
        page_size: int,
        count: int,
        has_next: bool,
    ) -> dict[str, Any]:
        """Twilio's paging fields for a page of ``count`` rows (API-7)."""

        def page_uri(number: int) -> str:
            query = urlencode({**filters, "PageSize": page_size, "Page": number})
            return f"{path}?{query}"

        start = page * page_size
        return {
            "page": page,
            "page_size": page_size,
            "start": start,
            "end": start + max(count, 1) - 1,
            "uri": page_uri(page),
            "first_page_uri": page_uri(0),
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "next_page_uri": page_uri(page + 1) if has_next else None,
        }


def services_of(request: Request) -> ApiServices:
    """The services the app was built with."""
    services: ApiServices = request.app.state.services
    return services


@asynccontextmanager
async def authenticated(request: Request, account_sid: str | None) -> AsyncIterator[Scope]:
    """Authenticate (401), check the path AccountSid (403) and open a transaction (API-4)."""
    services = services_of(request)
    credentials = basic_credentials(request)
    async with services.db.session() as session:
        user = credentials[0] if credentials else ""
        known = services.known_account(user)
        if known is None:
            known = await Accounts(session).get(user)
            if known is not None:
                services.remember_account(known)
        account = check_credentials(known, credentials)
        if account_sid is not None and account_sid != account.sid:
            raise ApiError(
                20403, 403, f"AccountSid {account_sid[:40]} is not the authenticated account"
            )
        yield Scope(services, session, account, flavour_of(request), request)
    if request.method not in ("GET", "HEAD"):  # committed: routing may have changed
        services.committed()


Handler = Callable[..., Awaitable[Response]]


def add_routes(app: FastAPI, path: str, handler: Handler, methods: list[str]) -> None:
    """Register ``path`` under both prefixes (API-1), with and without ``.json`` (API-2).

    The ``.json`` form is registered first so that ``{sid}`` never swallows the suffix.
    Only the Twilio ``.json`` form is shown on the OpenAPI page.
    """
    for prefix in (TWILIO_PREFIX, RESTCOMM_PREFIX):
        for suffix in (".json", ""):
            app.add_api_route(
                prefix + path + suffix,
                handler,
                methods=methods,
                include_in_schema=(prefix == TWILIO_PREFIX and suffix == ".json"),
                name=f"{handler.__name__}{prefix}{suffix}",
            )
