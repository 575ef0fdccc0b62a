"""CallRecords against a temporary SQLite database (CB-6, DOC-20, API-23 storage).

Rows are written in issue order per call even without awaiting, durations round half up,
Notifications are trimmed and logged once without secrets, and a failing, slow or missing
database never raises into the caller.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import capture_logs

from dialtone import ids
from dialtone.calls.records import CallRecords, call_duration, form_encode, trim_body
from dialtone.storage import database
from dialtone.storage.call_store import (
    SessionCallStore,
    SqliteCallStore,
    WritePlan,
    open_call_store,
)
from dialtone.storage.database import Database
from dialtone.storage.models import Account, Call, Notification
from dialtone.storage.repository import Calls, Notifications
from dialtone.testing.clock import FakeClock

T0 = datetime(2025, 11, 4, 10, 0, 0, tzinfo=UTC)
ACCOUNT = "AC" + "a" * 32
PUBLIC = "http://127.0.0.1:8080"
FAST = (0.0, 0.0, 0.0)

# The broken- and hung-database tests leave aiosqlite worker threads that may finish after
# their test's event loop closed; aiosqlite then raises inside its own thread. That is the
# library's shutdown noise for a database we broke on purpose, not a leak of ours.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


async def new_database(path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    async with db.session() as session:
        session.add(
            Account(
                sid=ACCOUNT,
                friendly_name="t",
                auth_token="0" * 32,
                status="active",
                date_created=T0,
                date_updated=T0,
            )
        )
    return db


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await new_database(tmp_path / "records.db")
    yield database
    await database.dispose()


@pytest.fixture(params=["sqlite", "session"])
async def records(db: Database, request: pytest.FixtureRequest) -> AsyncIterator[CallRecords]:
    """Each test twice: through the embedded SQLite store and through the session store."""
    assert db.sqlite_path is not None
    store = SqliteCallStore(db.sqlite_path) if request.param == "sqlite" else SessionCallStore(db)
    service = CallRecords(
        db, FakeClock(utc=T0), public_url=PUBLIC + "/", retry_delays=FAST, store=store
    )
    yield service
    await service.close()


def test_a_sqlite_file_database_gets_the_sqlite_store(db: Database) -> None:
    assert isinstance(open_call_store(db), SqliteCallStore)
    assert isinstance(open_call_store(Flaky(db)), SessionCallStore)
    assert Database("sqlite+aiosqlite://").sqlite_path is None
    assert Database("sqlite+aiosqlite:///:memory:").sqlite_path is None


def create(records: CallRecords, sid: str | None = None, **overrides: object) -> str:
    sid = sid or ids.new_sid(ids.CALL)
    fields: dict[str, object] = {
        "account_sid": ACCOUNT,
        "direction": "inbound",
        "from_": "+15557654321",
        "to": "+15550001111",
        "status": "ringing",
        "api_version": "2010-04-01",
        "start_time": T0,
        **overrides,
    }
    records.create(sid, **fields)  # type: ignore[arg-type]
    return sid


async def load(db: Database, sid: str) -> Call:
    async with db.session() as session:
        row = await Calls(session).by_sid(sid)
    assert row is not None, sid
    return row


async def notification(db: Database, sid: str) -> Notification:
    async with db.session() as session:
        row = await Notifications(session).get(ACCOUNT, sid)
    assert row is not None, sid
    return row


async def test_create_update_finish_back_to_back_land_in_order(
    db: Database, records: CallRecords
) -> None:
    sid = create(records, caller_name="Alice", sip_call_id="abc@host")
    records.update(sid, status="in-progress", answer_time=T0 + timedelta(seconds=2))
    records.update(sid, sip_response_code=200)
    records.finish(sid, "completed", T0 + timedelta(seconds=14, milliseconds=500), 200)
    assert records.live_count() == 0
    await records.flush(sid)
    row = await load(db, sid)
    assert (row.status, row.duration, row.sip_response_code) == ("completed", 13, 200)
    assert row.answer_time == T0 + timedelta(seconds=2)
    assert row.end_time == T0 + timedelta(seconds=14, milliseconds=500)
    assert (row.caller_name, row.sip_call_id, row.from_, row.to) == (
        "Alice",
        "abc@host",
        "+15557654321",
        "+15550001111",
    )
    assert row.date_created == T0 and row.start_time.tzinfo is not None
    assert records.stats()["written"] == 4 and records.stats()["pending"] == 0


async def test_a_live_call_has_no_duration_and_counts_as_live(
    db: Database, records: CallRecords
) -> None:
    sid = create(records)
    assert await records.update(sid, status="in-progress", answer_time=T0) is True
    assert records.live_count() == 1
    row = await load(db, sid)
    assert (row.duration, row.end_time, row.status) == (None, None, "in-progress")


@pytest.mark.parametrize(
    ("answered_after", "ended_after", "expected"),
    [
        (None, 30.0, 0),  # never answered: 0 (CB-6)
        (1.0, 1.0, 0),
        (0.0, 2.499999, 2),
        (0.0, 2.5, 3),  # half up, not to even
        (0.0, 3.5, 4),
        (0.0, 4.5, 5),
        (0.0, 59.500001, 60),
        (5.0, 4.0, 0),  # a clock that went back never gives a negative duration
    ],
)
def test_call_duration_rounds_half_up(
    answered_after: float | None, ended_after: float, expected: int
) -> None:
    answered = None if answered_after is None else T0 + timedelta(seconds=answered_after)
    assert call_duration(answered, T0 + timedelta(seconds=ended_after)) == expected


async def test_finish_without_answer_is_duration_zero(db: Database, records: CallRecords) -> None:
    sid = create(records, direction="outbound-dial", parent_call_sid=ids.new_sid(ids.CALL))
    assert await records.finish(sid, "no-answer", T0 + timedelta(seconds=60), 487) is True
    row = await load(db, sid)
    assert (row.status, row.duration, row.sip_response_code) == ("no-answer", 0, 487)
    assert row.parent_call_sid is not None and row.direction == "outbound-dial"


async def test_finish_half_second_rounds_up_through_the_database(
    db: Database, records: CallRecords
) -> None:
    sid = create(records)
    records.update(sid, answer_time=T0 + timedelta(seconds=1))
    records.finish(sid, "completed", T0 + timedelta(seconds=11, milliseconds=500))
    await records.flush()
    assert (await load(db, sid)).duration == 11


async def test_many_calls_interleaved_each_keep_their_order(
    db: Database, records: CallRecords
) -> None:
    sids = [create(records) for _ in range(40)]
    for step in range(5):
        for sid in sids:
            records.update(sid, sip_response_code=180 + step)
    for sid in sids:
        records.finish(sid, "busy", T0 + timedelta(seconds=3), 486)
    await records.flush()
    for sid in sids:
        row = await load(db, sid)
        assert (row.status, row.sip_response_code, row.duration) == ("busy", 486, 0)
    assert records.stats()["queued_calls"] == 0 and records.stats()["failed"] == 0


async def test_writes_queued_together_are_one_transaction(
    db: Database, records: CallRecords
) -> None:
    sids = [create(records) for _ in range(40)]
    for sid in sids:
        records.update(sid, status="in-progress", answer_time=T0 + timedelta(seconds=1))
        records.notify(ACCOUNT, sid, log=1, error_code=13227, message_text="n")
        records.finish(sid, "completed", T0 + timedelta(seconds=4), 200)
    await records.flush()
    stats = records.stats()
    assert stats["batches"] == 1 and stats["written"] == 160, stats
    for sid in sids:
        row = await load(db, sid)
        assert (row.status, row.duration, row.sip_response_code) == ("completed", 3, 200)


async def test_changes_of_stored_calls_merge_into_one_update_each(
    db: Database, records: CallRecords
) -> None:
    sids = [create(records) for _ in range(3)]
    await records.flush()
    records.update(sids[0], status="in-progress", answer_time=T0 + timedelta(seconds=2))
    records.update(sids[0], sip_response_code=200)
    records.finish(sids[0], "completed", T0 + timedelta(seconds=9))
    records.update(sids[1], status="in-progress")  # sets other columns than sids[0]
    records.finish(sids[2], "busy", T0 + timedelta(seconds=1), 486)
    await records.flush()
    assert records.stats()["batches"] == 2
    first, second, third = [await load(db, sid) for sid in sids]
    assert (first.status, first.duration, first.sip_response_code) == ("completed", 7, 200)
    assert (second.status, second.end_time) == ("in-progress", None)
    assert (third.status, third.duration, third.sip_response_code) == ("busy", 0, 486)


async def test_finish_counts_from_an_answer_stored_by_an_earlier_batch(
    db: Database, records: CallRecords
) -> None:
    sid = create(records)
    records.update(sid, answer_time=T0 + timedelta(seconds=5))
    await records.flush()
    assert await records.finish(sid, "completed", T0 + timedelta(seconds=8)) is True
    assert (await load(db, sid)).duration == 3


async def test_small_batches_keep_the_order_across_them(db: Database) -> None:
    records = CallRecords(db, FakeClock(utc=T0), public_url=PUBLIC, max_batch=3)
    sids = [create(records) for _ in range(5)]
    for code in (180, 183, 200):
        for sid in sids:
            records.update(sid, sip_response_code=code)
    for sid in sids:
        records.finish(sid, "completed", T0)
    await records.flush()
    assert records.stats()["batches"] == 9  # 25 writes, 3 at a time
    for sid in sids:
        row = await load(db, sid)
        assert (row.status, row.sip_response_code) == ("completed", 200)
    await records.close()


async def test_an_update_queued_before_its_create_is_missing(
    db: Database, records: CallRecords
) -> None:
    sid = ids.new_sid(ids.CALL)
    with capture_logs():
        early = records.update(sid, status="in-progress")
        create(records, sid)
        assert await early is False
    assert (await load(db, sid)).status == "ringing"
    assert records.stats()["missing"] == 1 and records.stats()["written"] == 1


async def test_notification_is_trimmed_encoded_and_follows_its_call(
    db: Database, records: CallRecords
) -> None:
    sid = create(records, api_version="2012-04-24")
    body = "é" * 3000  # 6000 bytes of UTF-8
    variables = [("CallSid", sid), ("From", "+1 555"), ("Digits", "1&2")]
    nsid = records.notify(
        ACCOUNT,
        sid,
        log=0,
        error_code=11200,
        message_text="http://app.test/voice: HTTP 500",
        request_url="http://app.test/voice",
        request_method="POST",
        request_variables=variables,
        response_body=body,
    )
    assert ids.is_sid(nsid, ids.NOTIFICATION)
    await records.flush(sid)
    row = await notification(db, nsid)
    assert row.call_sid == sid and row.api_version == "2012-04-24"
    assert (row.log, row.error_code, row.request_method) == (0, 11200, "POST")
    assert row.more_info == f"{PUBLIC}/docs/errors/11200"
    assert row.message_date == T0 and row.date_created == T0
    assert parse_qsl(row.request_variables or "") == variables
    assert row.response_body is not None
    assert len(row.response_body.encode()) == 4096 and body.startswith(row.response_body)


def test_body_and_variable_helpers() -> None:
    assert trim_body(None) is None
    assert trim_body("short") == "short"
    assert trim_body(b"\xff" + b"a" * 5000) == "\ufffd" + "a" * 4093
    assert len(trim_body("€" * 2000) or "") == 1365  # 3-byte characters never split
    assert form_encode({"A": "1", "B": "x y"}) == "A=1&B=x+y"
    assert form_encode("A=1") == "A=1" and form_encode(None) is None


async def test_notification_logged_once_without_secrets(db: Database, records: CallRecords) -> None:
    with capture_logs() as logs:
        nsid = records.notify(
            ACCOUNT,
            None,
            log=1,
            error_code=15003,
            message_text="status callback to https://user:hunter2@app.test/cb not delivered",
            request_url="https://user:hunter2@app.test/cb",
            request_method="POST",
            request_variables={"CallStatus": "completed"},
        )
        await records.flush()
    events = [e for e in logs if e["event"] == "notification"]
    assert len(events) == 1
    assert events[0]["log_level"] == "warning" and events[0]["notification_sid"] == nsid
    assert events[0]["error_code"] == 15003 and events[0]["call_sid"] is None
    assert "hunter2" not in repr(logs)
    row = await notification(db, nsid)
    assert row.request_url == "https://***@app.test/cb" and "hunter2" not in row.message_text
    assert row.api_version == "2010-04-01"


async def test_arguments_that_are_bugs_raise_at_once(records: CallRecords) -> None:
    sid = create(records)
    with pytest.raises(TypeError, match="colour"):
        records.update(sid, colour="red")
    with pytest.raises(ValueError, match="status"):
        records.update(sid, status="ringing-ish")
    with pytest.raises(ValueError, match="aware"):
        records.update(sid, answer_time=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="final"):
        records.finish(sid, "in-progress", T0)
    with pytest.raises(ValueError, match="CallSid"):
        create(records, "XX123")
    with pytest.raises(ValueError, match="log"):
        records.notify(ACCOUNT, sid, log=2, error_code=1, message_text="x")


class Flaky:
    """A session source that fails ``failures`` times, optionally hangs, then delegates."""

    def __init__(self, db: Database, failures: int = 0, error: Exception | None = None) -> None:
        self.db, self.failures, self.attempts = db, failures, 0
        self.error = error or OperationalError("INSERT", {}, Exception("database is locked"))
        self.release: asyncio.Event | None = None

    def session(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self._session()

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        self.attempts += 1
        if self.release is not None:
            await self.release.wait()
        if self.attempts <= self.failures:
            raise self.error
        async with self.db.session() as session:
            yield session


async def test_transient_failures_are_retried_then_written(db: Database) -> None:
    flaky = Flaky(db, failures=2)
    records = CallRecords(flaky, FakeClock(utc=T0), public_url=PUBLIC, retry_delays=FAST)
    with capture_logs():
        sid = create(records)
        assert await records.finish(sid, "failed", T0) is True
    assert (await load(db, sid)).status == "failed"
    assert records.stats()["retried"] == 2 and records.stats()["failed"] == 0
    await records.close()


async def test_the_sqlite_store_retries_while_another_connection_holds_the_lock(
    db: Database,
) -> None:
    assert db.sqlite_path is not None
    other = sqlite3.connect(db.sqlite_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the API's writer, say, in the middle of a transaction
    locked_twice = asyncio.Event()

    class Watched(SqliteCallStore):
        failures = 0

        async def write(self, plan: WritePlan) -> set[str]:
            try:
                return await super().write(plan)
            except sqlite3.OperationalError:
                self.failures += 1
                if self.failures == 2:
                    locked_twice.set()
                raise

    store = Watched(db.sqlite_path)
    records = CallRecords(
        db, FakeClock(utc=T0), public_url=PUBLIC, retry_delays=(0.0,) * 100, store=store
    )
    with capture_logs() as logs:
        sid = create(records)
        await locked_twice.wait()
        assert records.stats()["written"] == 0
        other.execute("COMMIT")
        assert await records.finish(sid, "completed", T0) is True
    other.close()
    assert (await load(db, sid)).status == "completed"
    assert {e["event"] for e in logs} == {"records.retrying"}
    assert "locked" in logs[0]["error"]
    await records.close()


async def test_a_broken_database_never_raises_to_the_caller(tmp_path: Path) -> None:
    missing = Database(f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/x.db")
    records = CallRecords(missing, FakeClock(utc=T0), public_url=PUBLIC, retry_delays=FAST)
    with capture_logs() as logs:
        sid = create(records)
        update = records.update(sid, status="in-progress")
        nsid = records.notify(ACCOUNT, sid, log=0, error_code=12400, message_text="boom")
        assert ids.is_sid(nsid, ids.NOTIFICATION)
        assert await update is False
        await records.flush()
    stats = records.stats()
    assert stats["failed"] == 3 and stats["written"] == 0 and stats["pending"] == 0
    assert stats["retried"] == len(FAST)  # the three writes were one batch, tried 1 + 3 times
    assert any(e["event"] == "records.write_failed" for e in logs)
    await records.close()
    await missing.dispose()


async def test_a_permanent_error_is_not_retried_and_later_writes_go_on(
    db: Database, records: CallRecords
) -> None:
    sid = create(records)
    await records.flush()
    with capture_logs():
        duplicate = records.create(  # the same CallSid twice: IntegrityError, not retried
            sid,
            account_sid=ACCOUNT,
            direction="inbound",
            from_="a",
            to="b",
            status="ringing",
            api_version="2010-04-01",
            start_time=T0,
        )
        records.update(sid, status="in-progress")
        assert await duplicate is False
        await records.flush()
    assert records.stats()["failed"] == 1 and records.stats()["retried"] == 0
    assert (await load(db, sid)).status == "in-progress"


async def test_update_of_an_unknown_call_is_counted_not_raised(records: CallRecords) -> None:
    with capture_logs() as logs:
        assert await records.update(ids.new_sid(ids.CALL), status="busy") is False
    assert records.stats()["missing"] == 1
    assert [e["event"] for e in logs] == ["records.call_missing"]


async def test_a_hung_database_does_not_block_the_caller(db: Database) -> None:
    flaky = Flaky(db)
    flaky.release = asyncio.Event()
    records = CallRecords(
        flaky, FakeClock(utc=T0), public_url=PUBLIC, retry_delays=(0.0,) * 50, attempt_timeout=0.02
    )
    with capture_logs():
        sid = create(records)  # returns at once: nothing here awaits the database
        finish = records.finish(sid, "completed", T0)
        await asyncio.sleep(0.1)
        assert not finish.done() and records.stats()["retried"] >= 2
        flaky.release.set()
        assert await finish is True
    assert (await load(db, sid)).status == "completed"
    await records.close()


async def test_close_abandons_what_a_stuck_database_holds(db: Database) -> None:
    flaky = Flaky(db)
    flaky.release = asyncio.Event()
    records = CallRecords(flaky, FakeClock(utc=T0), public_url=PUBLIC, attempt_timeout=60)
    with capture_logs() as logs:
        sid = create(records)
        update = records.update(sid, status="in-progress")
        await records.close(timeout=0.05)
        assert await update is False
        assert await records.update(sid, status="busy") is False  # refused after close
    assert records.stats()["dropped"] == 3 and records.stats()["queued_calls"] == 0
    assert {e["event"] for e in logs} >= {"records.abandoned", "records.dropped"}


async def test_a_full_queue_drops_instead_of_growing(db: Database) -> None:
    records = CallRecords(db, FakeClock(utc=T0), public_url=PUBLIC, max_pending=2)
    with capture_logs():
        first = create(records)
        records.update(first, status="in-progress")
        assert await records.update(first, status="busy") is False
    await records.flush()
    assert records.stats()["dropped"] == 1 and records.stats()["written"] == 2
    await records.close()


def alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


def test_migration_0002_upgrades_a_0001_database_and_downgrades(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/m.db")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        assert "calls" not in sa.inspect(conn).get_table_names()
        command.upgrade(alembic_config(conn), "head")
        inspector = sa.inspect(conn)
        assert {"calls", "notifications"} <= set(inspector.get_table_names())
        columns = {c["name"] for c in inspector.get_columns("calls")}
        assert {"from_number", "to_number", "duration", "sip_call_id"} <= columns
        indexes = {i["name"] for i in inspector.get_indexes("calls")}
        assert {"ix_calls_parent", "ix_calls_sip_call_id", "ix_calls_account_start"} <= indexes
        command.downgrade(alembic_config(conn), "0001")
        assert "calls" not in sa.inspect(conn).get_table_names()
    engine.dispose()


def test_sqlite_utc_text_is_what_sqlalchemy_stores() -> None:
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

    from dialtone.storage.call_store import sqlite_utc_text
    from dialtone.storage.models import UTCDateTime

    dialect = SQLiteDialect_pysqlite()
    reference = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert reference is not None
    plus_two = timezone(timedelta(hours=2))
    for value in (
        T0,
        T0.replace(microsecond=7),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 1, 1, 1, 30, tzinfo=plus_two),  # the day before, in UTC
    ):
        assert sqlite_utc_text(value) == reference(value)
    with pytest.raises(ValueError, match="naive"):
        sqlite_utc_text(datetime(2026, 1, 1))


async def test_changes_gather_between_transactions_but_creates_go_at_once(db: Database) -> None:
    records = CallRecords(db, FakeClock(utc=T0), public_url=PUBLIC, coalesce=3600)
    first = create(records)
    assert await records.flush(first) is None  # the first transaction never waits
    update = records.update(first, status="in-progress")
    for _ in range(20):  # the writer's turns come and go: the change waits for company
        await asyncio.sleep(0)
    assert not update.done()
    second = create(records)  # a create is not kept waiting (RTE-4), the change goes with it
    assert await update is True
    await records.flush(second)
    assert records.stats()["batches"] == 2
    assert (await load(db, first)).status == "in-progress"
    last = records.update(second, status="in-progress")
    await records.close()  # does not wait out the gathering: what is queued is written
    assert await last is True
