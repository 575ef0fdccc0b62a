"""The authenticated account is reused for ACCOUNT_TTL seconds (a fake clock here).

Every committed write request through the API forgets it at once; a change made past the API
(another server on the same database) applies within the TTL.  A request that failed (its
transaction rolled back) leaves the cached copy usable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from dialtone.accounts import ensure_account
from dialtone.api.app import create_app
from dialtone.api.scope import ACCOUNT_TTL, ApiServices
from dialtone.config import Settings
from dialtone.storage.database import Database
from dialtone.storage.models import Account
from dialtone.testing.clock import FakeClock

ACCOUNT = "AC" + "d" * 32
TOKEN = "e" * 32
NEW_TOKEN = "f" * 32


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    settings = Settings(data_dir=tmp_path, account_sid=ACCOUNT, auth_token=TOKEN)
    database = Database(settings.effective_database_url)
    await database.migrate()
    await ensure_account(database, settings, FakeClock())
    yield database
    await database.dispose()


async def set_token(db: Database, token: str) -> None:
    """Change the token behind the API's back, as another server would."""
    async with db.session() as session:
        await session.execute(sa.update(Account).values(auth_token=token))


async def test_cached_for_the_ttl_forgotten_by_a_write(db: Database, tmp_path: Path) -> None:
    clock = FakeClock()
    settings = Settings(data_dir=tmp_path, account_sid=ACCOUNT, auth_token=TOKEN)
    services = ApiServices(db=db, settings=settings, clock=clock)
    transport = httpx.ASGITransport(app=create_app(services))
    base = f"http://api.test/2010-04-01/Accounts/{ACCOUNT}"
    async with httpx.AsyncClient(transport=transport) as api:
        assert (await api.get(f"{base}/Clients.json", auth=(ACCOUNT, TOKEN))).status_code == 200
        # A refused request rolls its transaction back: the cached copy stays usable.
        other = f"http://api.test/2010-04-01/Accounts/AC{'1' * 32}/Clients.json"
        assert (await api.get(other, auth=(ACCOUNT, TOKEN))).status_code == 403
        await set_token(db, NEW_TOKEN)
        # Within the TTL the account read a moment ago is reused.
        assert (await api.get(f"{base}/Clients.json", auth=(ACCOUNT, TOKEN))).status_code == 200
        clock.advance(ACCOUNT_TTL + 0.1)
        assert (await api.get(f"{base}/Clients.json", auth=(ACCOUNT, TOKEN))).status_code == 401
        new = (ACCOUNT, NEW_TOKEN)
        assert (await api.get(f"{base}/Clients.json", auth=new)).status_code == 200
        # A committed write request forgets the account at once.
        created = await api.post(
            f"{base}/Clients.json", data={"Login": "alice", "Password": "Secret-123"}, auth=new
        )
        assert created.status_code == 201, created.text
        await set_token(db, TOKEN)
        assert (await api.get(f"{base}/Clients.json", auth=new)).status_code == 401
        assert (await api.get(f"{base}/Clients.json", auth=(ACCOUNT, TOKEN))).status_code == 200
