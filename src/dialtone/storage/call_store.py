"""Where :class:`dialtone.calls.records.CallRecords` writes its batches: the SQL of call records.

A batch arrives already planned: Call rows to INSERT, changes to stored Calls (by CallSid, each
a dict of the columns it sets) and Notification rows to INSERT.  A store applies it in one
transaction and reports which changed Calls matched no row.  Two stores:

- :class:`SqliteCallStore`, for a SQLite database file (the embedded default): the stdlib
  ``sqlite3`` module on the event loop's own thread.  A batch is a few microseconds of C per
  row, far less than handing each statement to aiosqlite's thread and waiting for the GIL to
  come back (a busy loop kept that thread waiting up to a switch interval per statement).
  It never blocks the loop on another writer for long: its busy timeout is
  :data:`BUSY_TIMEOUT_MS`, after which the lock error is raised and the batch retried later.
- :class:`SessionCallStore`, for every other database (Postgres) and for session sources that
  are not a :class:`~dialtone.storage.database.Database` (test doubles): Core statements
  through an ``AsyncSession``.

Values use the same conversions as the ORM (``UTCDateTime`` stores naive UTC text), so rows
written by either store read back identically through the models.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, cast

from sqlalchemy import Column, Table, bindparam, insert, select, update
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.ext.asyncio import AsyncSession

from dialtone.storage.models import Call, Notification, UTCDateTime

__all__ = [
    "BUSY_TIMEOUT_MS",
    "CallStore",
    "SessionCallStore",
    "SqliteCallStore",
    "WritePlan",
    "open_call_store",
]

BUSY_TIMEOUT_MS: Final = 20
"""How long a SQLite batch waits for another connection's write lock before it is retried."""
_IN_CHUNK: Final = 500
"""How many CallSids one ``IN (…)`` lookup names (SQLite allows 999 bound variables)."""


@dataclass(slots=True)
class WritePlan:
    """One batch, planned: ``calls`` to insert, ``changes`` by CallSid, ``notifications``.

    Rows are dicts keyed by the models' attribute names (``from_``, not ``from_number``); a
    Call row names every column.
    """

    calls: list[dict[str, Any]] = field(default_factory=list)
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)


class CallStore(Protocol):
    """Applies planned batches; every failure is raised (the records service classifies it)."""

    async def write(self, plan: WritePlan) -> set[str]:
        """Apply ``plan`` in one transaction; return the CallSids of changes that found no row."""
        ...

    def close(self) -> None:
        """Release what the store holds (idempotent)."""
        ...


class SessionSource(Protocol):
    """Where transactions come from: :class:`dialtone.storage.database.Database`."""

    def session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session inside one transaction, committed when the block succeeds."""
        ...


def open_call_store(db: SessionSource) -> CallStore:
    """The fast SQLite store for a SQLite file database, else the session store."""
    path = getattr(db, "sqlite_path", None)
    return SqliteCallStore(path) if isinstance(path, Path) else SessionCallStore(db)


def _columns(model: Any) -> dict[str, Column[Any]]:
    """Attribute name -> column (``from_`` -> ``from_number``), without the row id."""
    return {prop.key: prop.columns[0] for prop in model.__mapper__.column_attrs if prop.key != "id"}


_CALL_TABLE: Final = cast(Table, Call.__table__)
_CALLS: Final = _columns(Call)
_NOTIFICATIONS: Final = _columns(Notification)


class SqliteCallStore:
    """Writes batches with ``sqlite3`` on the calling (event-loop) thread.

    The connection opens on the first write (a missing directory is an ``OperationalError``
    then, retried like a locked database) and runs in autocommit mode with explicit
    ``BEGIN IMMEDIATE`` … ``COMMIT``, WAL journal, ``synchronous=NORMAL`` and foreign keys on,
    as the server's other connections.
    """

    def __init__(self, path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        dialect = SQLiteDialect_pysqlite()
        self._call_sql = _SqliteTable(Call.__tablename__, _CALLS, dialect)
        self._note_sql = _SqliteTable(Notification.__tablename__, _NOTIFICATIONS, dialect)

    async def write(self, plan: WritePlan) -> set[str]:
        """Apply ``plan`` at once (no await inside: the loop runs nothing else meanwhile)."""
        return self.write_now(plan)

    def write_now(self, plan: WritePlan) -> set[str]:
        """The synchronous body of :meth:`write`."""
        conn = self._connection()
        missing: set[str] = set()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if plan.calls:
                sql, rows = self._call_sql.insert(plan.calls)
                conn.executemany(sql, rows)
            for sid, change in plan.changes.items():
                sql, row = self._call_sql.update(change, sid)
                if conn.execute(sql, row).rowcount == 0:
                    missing.add(sid)
            if plan.notifications:
                sql, rows = self._note_sql.insert(plan.notifications)
                conn.executemany(sql, rows)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return missing

    def close(self) -> None:
        """Close the connection (a later write opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn


def sqlite_utc_text(value: datetime) -> str:
    """What SQLAlchemy stores for a ``UTCDateTime`` in SQLite: naive UTC text, microseconds."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    if value.utcoffset():
        value = value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


class _SqliteTable:
    """The INSERT and UPDATE text of one table and the ORM's value conversions for it."""

    def __init__(self, name: str, columns: Mapping[str, Column[Any]], dialect: Any) -> None:
        self._name = name
        self._keys = tuple(columns)
        self._names = {key: column.name for key, column in columns.items()}
        self._convert: dict[str, Callable[[Any], Any]] = {}
        for key, column in columns.items():
            processor: Callable[[Any], Any] | None
            if isinstance(column.type, UTCDateTime):
                processor = sqlite_utc_text  # the ORM's text, a tenth of the work
            else:
                processor = column.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._convert[key] = processor
        names = ", ".join(f'"{self._names[key]}"' for key in self._keys)
        marks = ", ".join("?" for _ in self._keys)
        # Table and column names come from the models, never from input.
        self._insert = f'INSERT INTO "{name}" ({names}) VALUES ({marks})'  # noqa: S608
        self._updates: dict[tuple[str, ...], str] = {}

    def _value(self, key: str, value: Any) -> Any:
        convert = self._convert.get(key)
        return value if convert is None or value is None else convert(value)

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> tuple[str, list[tuple[Any, ...]]]:
        """The INSERT naming every column and one parameter tuple per row."""
        keys, value = self._keys, self._value
        return self._insert, [tuple(value(key, row.get(key)) for key in keys) for row in rows]

    def update(self, change: Mapping[str, Any], sid: str) -> tuple[str, tuple[Any, ...]]:
        """``UPDATE … SET <the change's columns> WHERE sid = ?`` and its parameters."""
        keys = tuple(change)
        sql = self._updates.get(keys)
        if sql is None:
            sets = ", ".join(f'"{self._names[key]}" = ?' for key in keys)
            text = f'UPDATE "{self._name}" SET {sets} WHERE "sid" = ?'  # noqa: S608
            sql = self._updates[keys] = text
        return sql, (*(self._value(key, change[key]) for key in keys), sid)


class SessionCallStore:
    """Writes batches as Core statements through a session of ``db``."""

    def __init__(self, db: SessionSource) -> None:
        self._db = db

    async def write(self, plan: WritePlan) -> set[str]:
        """Insert, look up which changed Calls exist, update those, insert Notifications."""
        async with self._db.session() as session:
            if plan.calls:
                await session.execute(insert(Call), plan.calls)
            found = await _stored(session, list(plan.changes))
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for sid, change in plan.changes.items():
                if sid in found:
                    row = {f"v_{key}": value for key, value in change.items()}
                    groups.setdefault(tuple(sorted(change)), []).append({"b_sid": sid, **row})
            table = _CALL_TABLE
            for keys, rows in groups.items():
                values: dict[str, Any] = {_CALLS[key].name: bindparam(f"v_{key}") for key in keys}
                statement = update(table).where(table.c.sid == bindparam("b_sid")).values(values)
                await session.execute(statement, rows)
            if plan.notifications:
                await session.execute(insert(Notification), plan.notifications)
        return set(plan.changes) - found

    def close(self) -> None:
        """Nothing to release: the sessions are the database's."""


async def _stored(session: AsyncSession, sids: Sequence[str]) -> set[str]:
    """The CallSids among ``sids`` that have a row."""
    found: set[str] = set()
    for start in range(0, len(sids), _IN_CHUNK):
        chunk = sids[start : start + _IN_CHUNK]
        rows = await session.execute(select(Call.sid).where(Call.sid.in_(chunk)))
        found.update(sid for (sid,) in rows)
    return found
