"""Account bootstrap: the first start creates the account; later starts keep it (issue 3 §4)."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from dialtone import ids
from dialtone.clock import Clock
from dialtone.config import Settings, env_name
from dialtone.errors import StartupError
from dialtone.storage.database import Database
from dialtone.storage.models import Account
from dialtone.storage.repository import Accounts

log = structlog.get_logger("dialtone.accounts")


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """The account in use and whether this start created it (then its token is new)."""

    account: Account
    created: bool


async def ensure_account(db: Database, settings: Settings, clock: Clock) -> Bootstrap:
    """Create the account on an empty database, or load the stored one.

    ``DIALTONE_ACCOUNT_SID``/``DIALTONE_AUTH_TOKEN`` fix the credentials of a new account; a
    changed AuthToken updates the stored one; an AccountSid that differs from the stored
    account is a startup error (it would silently orphan the data).
    """
    async with db.session() as session:
        repo = Accounts(session)
        existing = await repo.all()
        now = clock.utcnow()
        if existing:
            account = existing[0]
            if settings.account_sid and settings.account_sid != account.sid:
                raise StartupError(
                    f"{env_name('account_sid')}={settings.account_sid} but the database holds "
                    f"account {account.sid}; unset it or use another --data-dir/--database-url"
                )
            if settings.auth_token and settings.auth_token != account.auth_token:
                account.auth_token = settings.auth_token
                account.date_updated = now
                log.info("account.auth_token_updated", account_sid=account.sid)
            return Bootstrap(account, created=False)
        account = Account(
            sid=settings.account_sid or ids.new_sid(ids.ACCOUNT),
            friendly_name="dialtone",
            auth_token=settings.auth_token or ids.new_auth_token(),
            status="active",
            date_created=now,
            date_updated=now,
        )
        repo.add(account)
        log.info("account.created", account_sid=account.sid)
        return Bootstrap(account, created=True)


async def stored_account(db: Database) -> Account | None:
    """The stored account, or None on an empty database."""
    async with db.session() as session:
        accounts = await Accounts(session).all()
    return accounts[0] if accounts else None
