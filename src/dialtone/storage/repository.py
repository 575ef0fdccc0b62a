"""Queries over the tables, one small repository per resource.

Repositories take an :class:`AsyncSession` that the caller opened as one transaction
(``Database.session()``), so a failed request writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialtone.storage.models import Account, Base, Client, PhoneNumber, Registration

RowT = TypeVar("RowT", Account, Client, PhoneNumber)


class Page(Generic[RowT]):
    """One page of a list: its rows and whether a next page exists."""

    def __init__(self, rows: Sequence[RowT], has_next: bool) -> None:
        self.rows: list[RowT] = list(rows)
        self.has_next = has_next


class _Resource(Generic[RowT]):
    """CRUD shared by account-owned resources (Clients, IncomingPhoneNumbers)."""

    model: type[RowT]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, account_sid: str, sid: str) -> RowT | None:
        """The row with this SID in this account, or None."""
        model: Any = self.model
        result = await self.session.execute(
            select(model).where(model.sid == sid, model.account_sid == account_sid)
        )
        row: RowT | None = result.scalar_one_or_none()
        return row

    async def page(
        self,
        account_sid: str,
        filters: Mapping[str, str | Sequence[str]],
        offset: int,
        limit: int,
    ) -> Page[RowT]:
        """Rows newest first from ``offset``; ``filters`` map columns to a value or choices."""
        model: Any = self.model
        query = select(model).where(model.account_sid == account_sid)
        for column, value in filters.items():
            attr = getattr(model, column)
            query = query.where(attr == value if isinstance(value, str) else attr.in_(value))
        query = query.order_by(model.date_created.desc(), model.id.desc())
        result = await self.session.execute(query.offset(offset).limit(limit + 1))
        rows = list(result.scalars())
        return Page(rows[:limit], len(rows) > limit)

    def add(self, row: RowT) -> None:
        """Stage a new row (written when the transaction commits)."""
        self.session.add(row)

    async def flush(self) -> None:
        """Write staged changes now, inside the transaction (surfaces constraint errors)."""
        await self.session.flush()

    async def remove(self, row: RowT) -> None:
        """Delete a row."""
        await self.session.delete(row)


class Accounts:
    """The account table."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, sid: str) -> Account | None:
        """The account with this SID."""
        result = await self.session.execute(select(Account).where(Account.sid == sid))
        return result.scalar_one_or_none()

    async def all(self) -> list[Account]:
        """Every account, oldest first."""
        result = await self.session.execute(select(Account).order_by(Account.id))
        return list(result.scalars())

    def add(self, account: Account) -> None:
        """Stage a new account."""
        self.session.add(account)


class Clients(_Resource[Client]):
    """The Clients of accounts."""

    model = Client

    async def by_login(self, account_sid: str, login: str) -> Client | None:
        """The Client with this Login (case-sensitive), or None."""
        result = await self.session.execute(
            select(Client).where(Client.account_sid == account_sid, Client.login == login)
        )
        return result.scalar_one_or_none()

    async def login_exists(self, account_sid: str, candidates: Sequence[str]) -> bool:
        """Whether any of these Logins exists in the account."""
        result = await self.session.execute(
            select(func.count())
            .select_from(Client)
            .where(Client.account_sid == account_sid, Client.login.in_(list(candidates)))
        )
        return bool(result.scalar_one())

    async def all_with_realm(self) -> list[Client]:
        """Every Client of every account (for the registrar's credential cache)."""
        result = await self.session.execute(select(Client))
        return list(result.scalars())


class PhoneNumbers(_Resource[PhoneNumber]):
    """The IncomingPhoneNumbers of accounts."""

    model = PhoneNumber

    async def find(self, account_sid: str, candidates: Sequence[str]) -> PhoneNumber | None:
        """The number equal to one of ``candidates`` (e.g. with and without a leading +)."""
        result = await self.session.execute(
            select(PhoneNumber).where(
                PhoneNumber.account_sid == account_sid,
                or_(*(PhoneNumber.phone_number == c for c in candidates)),
            )
        )
        return result.scalars().first()


class Registrations:
    """Stored bindings of Clients (the registrar keeps the live copy in memory)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def live(self, now: datetime) -> list[Registration]:
        """Every binding that has not expired at ``now``."""
        result = await self.session.execute(
            select(Registration).where(Registration.expires_at > now)
        )
        return list(result.scalars())

    async def replace_for_client(self, client_sid: str, rows: Sequence[Registration]) -> None:
        """Make ``rows`` the complete set of stored bindings of one Client."""
        await self.session.execute(
            delete(Registration).where(Registration.client_sid == client_sid)
        )
        self.session.add_all(list(rows))

    async def purge_expired(self, now: datetime) -> None:
        """Delete bindings that expired before ``now``."""
        await self.session.execute(delete(Registration).where(Registration.expires_at <= now))


__all__ = [
    "Accounts",
    "Base",
    "Clients",
    "Page",
    "PhoneNumbers",
    "Registrations",
]
