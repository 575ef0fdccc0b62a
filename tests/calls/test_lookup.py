"""StorageDirectory: routing answers cached for a while, dropped by every API write (RTE-2).

A number's VoiceUrl changed through the REST API must route the very next call, so the
API calls ``invalidate`` after each committed write; between writes the answers are
reused for ``ttl`` seconds (a fake clock here), misses included.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dialtone.accounts import ensure_account
from dialtone.api.app import create_app
from dialtone.api.scope import ApiServices
from dialtone.calls.lookup import StorageDirectory
from dialtone.clock import SystemClock
from dialtone.config import Settings
from dialtone.storage.database import Database
from dialtone.storage.models import PhoneNumber

ACCOUNT = "AC" + "b" * 32
TOKEN = "c" * 32
PHONE = "+15550001111"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    settings = Settings(data_dir=tmp_path, account_sid=ACCOUNT, auth_token=TOKEN)
    database = Database(settings.effective_database_url)
    await database.migrate()
    await ensure_account(database, settings, SystemClock())
    yield database
    await database.dispose()


async def add_number(db: Database, voice_url: str) -> None:
    now = SystemClock().utcnow()
    async with db.session() as session:
        session.add(
            PhoneNumber(
                sid="PN" + "1" * 32,
                account_sid=ACCOUNT,
                phone_number=PHONE,
                friendly_name=PHONE,
                voice_url=voice_url,
                voice_method="POST",
                api_version="2010-04-01",
                date_created=now,
                date_updated=now,
            )
        )


async def test_answers_are_reused_until_the_ttl_then_read_again(db: Database) -> None:
    clock = Clock()
    directory = StorageDirectory(db, ttl=5.0, clock=clock)
    await add_number(db, "http://app.test/one")
    first = await directory.number(ACCOUNT, [PHONE, PHONE[1:]])
    assert first is not None and first.voice_url == "http://app.test/one"
    async with db.session() as session:  # a change made around the API
        row = await session.get(PhoneNumber, 1)
        assert row is not None
        row.voice_url = "http://app.test/two"
    clock.now += 4.9
    again = await directory.number(ACCOUNT, [PHONE, PHONE[1:]])
    assert again is first and (directory.hits, directory.misses) == (1, 1)
    clock.now += 0.2
    later = await directory.number(ACCOUNT, [PHONE, PHONE[1:]])
    assert later is not None and later.voice_url == "http://app.test/two"
    assert directory.misses == 2


async def test_invalidate_routes_the_next_call_by_the_new_record(db: Database) -> None:
    directory = StorageDirectory(db, clock=Clock())
    assert await directory.number(ACCOUNT, [PHONE]) is None  # a miss is kept too
    await add_number(db, "http://app.test/one")
    assert await directory.number(ACCOUNT, [PHONE]) is None
    directory.invalidate()
    found = await directory.number(ACCOUNT, [PHONE])
    assert found is not None and found.voice_url == "http://app.test/one"
    assert await directory.client(ACCOUNT, "alice") is None  # kinds do not mix up


async def test_a_read_overtaken_by_a_write_is_not_kept(db: Database) -> None:
    directory = StorageDirectory(db, clock=Clock())
    reading = asyncio.create_task(directory.number(ACCOUNT, [PHONE]))
    await asyncio.sleep(0)  # the read is under way
    directory.invalidate()  # and a write commits
    assert await reading is None
    assert directory._cache == {}
    await directory.number(ACCOUNT, [PHONE])  # negative control: undisturbed, it is kept
    assert len(directory._cache) == 1


async def test_the_cache_is_bounded(db: Database) -> None:
    directory = StorageDirectory(db, max_entries=3, clock=Clock())
    for n in range(7):
        await directory.number(ACCOUNT, [f"+1555000{n:04d}"])
    assert len(directory._cache) <= 3


async def test_api_writes_invalidate_after_commit_and_reads_do_not(
    db: Database, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, account_sid=ACCOUNT, auth_token=TOKEN)
    directory = StorageDirectory(db, clock=Clock())
    services = ApiServices(
        db=db, settings=settings, clock=SystemClock(), changed=directory.invalidate
    )
    transport = httpx.ASGITransport(app=create_app(services))
    base = f"http://api.test/2010-04-01/Accounts/{ACCOUNT}"
    async with httpx.AsyncClient(transport=transport, auth=(ACCOUNT, TOKEN)) as api:
        created = await api.post(
            f"{base}/IncomingPhoneNumbers.json",
            data={"PhoneNumber": PHONE, "VoiceUrl": "http://app.test/one"},
        )
        assert created.status_code == 201, created.text
        found = await directory.number(ACCOUNT, [PHONE])
        assert found is not None and found.voice_url == "http://app.test/one"
        sid = created.json()["sid"]
        generation = directory._generation
        listed = await api.get(f"{base}/IncomingPhoneNumbers.json")
        assert listed.status_code == 200 and directory._generation == generation
        refused = await api.post(
            f"{base}/IncomingPhoneNumbers/{sid}.json", data={"VoiceMethod": "BREW"}
        )
        assert refused.status_code == 400 and directory._generation == generation
        updated = await api.post(
            f"{base}/IncomingPhoneNumbers/{sid}.json", data={"VoiceUrl": "http://app.test/two"}
        )
        assert updated.status_code == 200, updated.text
        found = await directory.number(ACCOUNT, [PHONE])
        assert found is not None and found.voice_url == "http://app.test/two"
        deleted = await api.delete(f"{base}/IncomingPhoneNumbers/{sid}.json")
        assert deleted.status_code == 204
        assert await directory.number(ACCOUNT, [PHONE]) is None
