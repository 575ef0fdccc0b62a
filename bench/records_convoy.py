"""How long call-record batches take while the event loop is busy, per GIL switch interval.

Run: ``.venv/bin/python bench/records_convoy.py [--intervals 0.005,0.001] [--calls 500]``.

The database driver (aiosqlite) runs SQLite in a thread that gives the GIL up around every
statement and row.  When the event loop thread is busy, each time the driver's thread
wants the GIL back it waits up to one switch interval (``sys.setswitchinterval``; Python's
default is 5 ms), so a batch of N rows can take N x 5 ms.  Here three tasks keep the loop
busy (2 ms of Python work between yields, like a loaded server), while ``--calls`` calls are
created in one batch and then changed (update + finish each) in another; the attempt
timeout is 5 s, as in the server.  ``dialtone serve`` sets 1 ms (``cli.SWITCH_INTERVAL``).
Each interval runs in a fresh process (the interval is process-wide).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ACCOUNT = "AC" + "a" * 32


async def _hog(stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        while time.perf_counter() - started < 0.002:
            pass
        await asyncio.sleep(0)


async def _measure(calls: int) -> str:
    from dialtone import ids
    from dialtone.calls.records import CallRecords
    from dialtone.storage.database import Database
    from dialtone.storage.models import Account
    from dialtone.testing.clock import FakeClock

    db = Database(f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/convoy.db")
    await db.migrate()
    async with db.session() as session:
        session.add(
            Account(
                sid=ACCOUNT,
                friendly_name="bench",
                auth_token="0" * 32,
                status="active",
                date_created=T0,
                date_updated=T0,
            )
        )
    records = CallRecords(db, FakeClock(utc=T0), public_url="http://127.0.0.1", max_batch=10**6)
    stop = asyncio.Event()
    hogs = [asyncio.create_task(_hog(stop)) for _ in range(3)]
    sids = [ids.new_sid(ids.CALL) for _ in range(calls)]
    started = time.monotonic()
    for sid in sids:
        records.create(
            sid,
            account_sid=ACCOUNT,
            direction="inbound",
            from_="+15550000001",
            to="+15550000002",
            status="ringing",
            api_version="2010-04-01",
            start_time=T0,
        )
    await records.flush()
    created = time.monotonic() - started
    started = time.monotonic()
    for sid in sids:
        records.update(sid, status="in-progress", answer_time=T0)
        records.finish(sid, "completed", T0 + timedelta(seconds=3), 200)
    await records.flush()
    changed = time.monotonic() - started
    stop.set()
    await asyncio.gather(*hogs)
    stats = records.stats()
    await records.close()
    await db.dispose()
    return (
        f"{calls} creates {created * 1000:.0f} ms, {2 * calls} changes {changed * 1000:.0f} ms, "
        f"retried {stats['retried']}, lost {stats['failed'] + stats['dropped']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", default="0.005,0.001")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        import uvloop

        sys.setswitchinterval(args.one)
        print(f"switch interval {args.one * 1000:g} ms: {uvloop.run(_measure(args.calls))}")
        return
    for interval in args.intervals.split(","):
        command = [sys.executable, __file__, "--one", interval, "--calls", str(args.calls)]
        subprocess.run(command, check=True, timeout=600)


if __name__ == "__main__":
    main()
