"""Queries over the tables, one small repository per resource.

Repositories take an :class:`AsyncSession` that the caller opened as one transaction
(``Database.session()``), so a failed request writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from dialtone.storage.models import (
    Account,
    Base,
    Call,
    Client,
    Notification,
    PhoneNumber,
    Registration,
)

RowT = TypeVar("RowT", Account, Client, PhoneNumber, Call, Notification)


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

    async def purge_expired(self, now: datetime) -> None:
        """Delete bindings that expired before ``now``."""
        await self.session.execute(delete(Registration).where(Registration.expires_at <= now))


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open interval ``[since, before)`` of aware UTC datetimes; None is unbounded."""

    since: datetime | None = None
    before: datetime | None = None

    def conditions(self, column: InstrumentedAttribute[Any]) -> list[ColumnElement[bool]]:
        """The SQL conditions that keep ``column`` inside the range (NULL never matches)."""
        found: list[ColumnElement[bool]] = []
        if self.since is not None:
            found.append(column >= self.since)
        if self.before is not None:
            found.append(column < self.before)
        return found


@dataclass(frozen=True, slots=True)
class CallFilter:
    """The filters of ``GET /Calls`` (API-22); a list of values matches any of them."""

    to: Sequence[str] = ()
    from_: Sequence[str] = ()
    status: str | None = None
    parent_call_sid: str | None = None
    start_time: TimeRange = TimeRange()
    end_time: TimeRange = TimeRange()


@dataclass(frozen=True, slots=True)
class NotificationFilter:
    """The filters of ``GET /Notifications`` (API-50), optionally of one call."""

    call_sid: str | None = None
    log: int | None = None
    message_date: TimeRange = TimeRange()


async def _search(
    session: AsyncSession,
    model: Any,
    conditions: Sequence[ColumnElement[bool]],
    offset: int,
    limit: int,
) -> tuple[list[Any], bool]:
    query = select(model).where(*conditions)
    query = query.order_by(model.date_created.desc(), model.id.desc())
    result = await session.execute(query.offset(offset).limit(limit + 1))
    rows = list(result.scalars())
    return rows[:limit], len(rows) > limit


class Calls(_Resource[Call]):
    """Call records (CDRs of legs): written by the call layer, read by the API."""

    model = Call

    async def by_sid(self, sid: str) -> Call | None:
        """The call with this SID in any account (the writer knows only the CallSid)."""
        result = await self.session.execute(select(Call).where(Call.sid == sid))
        return result.scalar_one_or_none()

    async def search(
        self, account_sid: str, where: CallFilter, offset: int, limit: int
    ) -> Page[Call]:
        """Calls of the account matching ``where``, newest ``date_created`` first."""
        conditions: list[ColumnElement[bool]] = [Call.account_sid == account_sid]
        if where.to:
            conditions.append(Call.to.in_(list(where.to)))
        if where.from_:
            conditions.append(Call.from_.in_(list(where.from_)))
        if where.status is not None:
            conditions.append(Call.status == where.status)
        if where.parent_call_sid is not None:
            conditions.append(Call.parent_call_sid == where.parent_call_sid)
        conditions += where.start_time.conditions(Call.start_time)
        conditions += where.end_time.conditions(Call.end_time)
        rows, has_next = await _search(self.session, Call, conditions, offset, limit)
        return Page(rows, has_next)


class Notifications(_Resource[Notification]):
    """Notifications (errors and warnings, DOC-20)."""

    model = Notification

    async def search(
        self, account_sid: str, where: NotificationFilter, offset: int, limit: int
    ) -> Page[Notification]:
        """Notifications of the account matching ``where``, newest ``date_created`` first."""
        conditions: list[ColumnElement[bool]] = [Notification.account_sid == account_sid]
        if where.call_sid is not None:
            conditions.append(Notification.call_sid == where.call_sid)
        if where.log is not None:
            conditions.append(Notification.log == where.log)
        conditions += where.message_date.conditions(Notification.message_date)
        rows, has_next = await _search(self.session, Notification, conditions, offset, limit)
        return Page(rows, has_next)


__all__ = [
    "Accounts",
    "Base",
    "CallFilter",
    "Calls",
    "Clients",
    "NotificationFilter",
    "Notifications",
    "Page",
    "PhoneNumbers",
    "Registrations",
    "TimeRange",
]
