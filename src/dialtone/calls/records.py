"""``CallRecords``: how the call layer writes Call rows (CDRs) and Notifications (DOC-20).

Every write method returns at once: it validates its arguments, queues the write on the
*lane* of its call and returns a :class:`Receipt`.  A lane is one task applying that call's
writes in issue order, one short transaction each, so ``create`` → ``update`` → ``finish``
land in order even when issued back-to-back without awaiting.  Lanes of different calls run
in parallel, at most ``max_concurrency`` transactions at once.

A slow or broken database never stops call control: no database failure is raised.  A
transient one (locked, unreachable, attempt timeout) is retried after each of
``retry_delays``, then the write is given up; outcomes are counted (:meth:`~CallRecords.stats`)
and logged at most once a second per kind.  Awaiting a receipt is optional; the call layer
awaits where the row must exist before it goes on (RTE-4: an inbound Call before its first
webhook; ``POST /Calls`` before its ``201``).  Argument errors (unknown field, naive
datetime, unknown status) are the caller's bugs and raise ``ValueError``/``TypeError``.

The composition root calls :meth:`CallRecords.close` after the call layer has ended its calls
and before the database is disposed.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from urllib.parse import urlencode

import structlog
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession

from dialtone import ids
from dialtone.clock import Clock
from dialtone.storage.models import Call, Notification
from dialtone.storage.repository import Calls

logger = structlog.get_logger("dialtone.calls.records")

CALL_STATUSES: Final = frozenset(
    {"queued", "ringing", "in-progress", "completed", "busy", "no-answer", "canceled", "failed"}
)
FINAL_STATUSES: Final = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})
DIRECTIONS: Final = frozenset({"inbound", "outbound-api", "outbound-dial"})
MAX_RESPONSE_BODY: Final = 4096
"""DOC-20: a Notification keeps the first 4 KiB (UTF-8 bytes) of a response body."""
RETRY_DELAYS: Final = (0.05, 0.25, 1.0, 3.0, 10.0)
_FIXED: Final = frozenset({"id", "sid", "account_sid", "date_created", "date_updated"})
"""Call columns that :meth:`CallRecords.update` cannot change."""
_LOGGED: Final = ("account_sid", "call_sid", "error_code", "log", "message_text", "request_url")
"""What the log line of a Notification carries (besides its SID): no bodies, no parameters."""
_USERINFO: Final = re.compile(r"(://)[^/\s@]+@")


class SessionSource(Protocol):
    """Where transactions come from: :class:`dialtone.storage.database.Database`."""

    def session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session inside one transaction, committed when the block succeeds."""
        ...


def call_duration(answer_time: datetime | None, end_time: datetime) -> int:
    """CB-6: whole seconds from answer to end, rounded half up; 0 if never answered."""
    if answer_time is None or end_time <= answer_time:
        return 0
    micros = (end_time - answer_time) // timedelta(microseconds=1)
    return (micros + 500_000) // 1_000_000


def form_encode(
    variables: Mapping[str, str] | Sequence[tuple[str, str]] | str | None,
) -> str | None:
    """The parameters sent, form-encoded in their order (already-encoded text is kept)."""
    if variables is None or isinstance(variables, str):
        return variables
    pairs = list(variables.items()) if isinstance(variables, Mapping) else list(variables)
    return urlencode(pairs)


def trim_body(body: str | bytes | None) -> str | None:
    """The first :data:`MAX_RESPONSE_BODY` UTF-8 bytes of a body, never splitting a character."""
    if body is None:
        return None
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return text.encode("utf-8")[:MAX_RESPONSE_BODY].decode("utf-8", errors="ignore")


def scrub(text: str) -> str:
    """``text`` with the user:password part of any URL replaced by ``***``."""
    return _USERINFO.sub(r"\1***@", text)


class Receipt:
    """A queued write.  ``await receipt`` waits until it was applied (True) or given up (False).

    Awaiting is optional, and cancelling the awaiting task does not cancel the write.
    """

    __slots__ = ("_done",)

    def __init__(self, done: asyncio.Future[bool]) -> None:
        self._done = done

    def done(self) -> bool:
        """Whether the write was applied or given up already."""
        return self._done.done()

    def __await__(self) -> Generator[Any, None, bool]:
        return asyncio.shield(self._done).__await__()


Apply = Callable[[AsyncSession], Awaitable[bool]]
"""One write: runs inside a fresh transaction per attempt; False means "nothing to do"."""


@dataclass(slots=True)
class _Write:
    what: str
    call_sid: str | None
    apply: Apply
    done: asyncio.Future[bool]


@dataclass(slots=True)
class _Lane:
    writes: deque[_Write] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class CallRecords:
    """Writes Calls and Notifications for the call layer: ordered per call, never raising."""

    def __init__(
        self,
        db: SessionSource,
        clock: Clock,
        *,
        public_url: str,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        attempt_timeout: float = 5.0,
        max_pending: int = 10_000,
        max_concurrency: int | None = None,
    ) -> None:
        self._db, self._clock = db, clock
        self._public_url = public_url.rstrip("/")
        self._retry_delays = tuple(retry_delays)
        self._attempt_timeout = attempt_timeout
        self._max_pending = max_pending
        # SQLite has one writer: concurrent write transactions would only wait on its lock.
        default = 1 if getattr(db, "is_sqlite", False) else 4
        self._slots = asyncio.Semaphore(max_concurrency or default)
        self._lanes: dict[str, _Lane] = {}
        # Live calls: CallSid -> (api_version, answer_time), from create() to finish().
        self._live: dict[str, tuple[str, datetime | None]] = {}
        self._pending = 0
        self._closed = False
        self._counts = dict.fromkeys(("written", "retried", "failed", "dropped", "missing"), 0)
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def create(
        self,
        call_sid: str,
        *,
        account_sid: str,
        direction: str,
        from_: str,
        to: str,
        status: str,
        api_version: str,
        start_time: datetime,
        parent_call_sid: str | None = None,
        phone_number_sid: str | None = None,
        caller_name: str | None = None,
        forwarded_from: str | None = None,
        sip_call_id: str | None = None,
    ) -> Receipt:
        """Queue the new Call row (``start_time``: when its INVITE came in or went out)."""
        if not ids.is_sid(call_sid, ids.CALL):
            raise ValueError(f"not a CallSid: {call_sid!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        _check("status", status)
        _check("start_time", start_time)
        now = self._clock.utcnow()
        values = {
            "sid": call_sid,
            "account_sid": account_sid,
            "parent_call_sid": parent_call_sid,
            "direction": direction,
            "from_": from_,
            "to": to,
            "status": status,
            "phone_number_sid": phone_number_sid,
            "caller_name": caller_name,
            "forwarded_from": forwarded_from,
            "api_version": api_version,
            "start_time": start_time,
            "sip_call_id": sip_call_id,
            "date_created": now,
            "date_updated": now,
        }
        self._live[call_sid] = (api_version, None)
        return self._queue(call_sid, "create", call_sid, _insert(Call, values))

    def update(self, call_sid: str, **fields: Any) -> Receipt:
        """Queue a change of the Call: ``status``, ``answer_time``, ``sip_response_code``…"""
        unknown = set(fields) - (set(Call.__mapper__.attrs.keys()) - _FIXED)
        if unknown:
            raise TypeError(f"update() got unknown Call fields {sorted(unknown)}")
        for name, value in fields.items():
            _check(name, value)
        live = self._live.get(call_sid)
        if live is not None and fields.get("answer_time") is not None:
            self._live[call_sid] = (live[0], fields["answer_time"])
        now = self._clock.utcnow()

        def change(row: Call) -> None:
            for name, value in fields.items():
                setattr(row, name, value)
            row.date_updated = now

        return self._queue(call_sid, "update", call_sid, self._change(call_sid, "update", change))

    def finish(
        self, call_sid: str, status: str, end_time: datetime, sip_response_code: int | None = None
    ) -> Receipt:
        """Queue the end of the Call: final status, end time, CB-6 duration, SIP code.

        The duration counts from the ``answer_time`` given to :meth:`update` (0 if none).
        ``sip_response_code`` None leaves an earlier value alone (a leg that sent no SIP).
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"finish() needs a final status, not {status!r}")
        _check("end_time", end_time)
        remembered = self._live.pop(call_sid, ("", None))[1]
        now = self._clock.utcnow()

        def change(row: Call) -> None:
            if row.answer_time is None:  # the update that set it was given up
                row.answer_time = remembered
            row.status, row.end_time = status, end_time
            row.duration = call_duration(row.answer_time, end_time)
            if sip_response_code is not None:
                row.sip_response_code = sip_response_code
            row.date_updated = now

        return self._queue(call_sid, "finish", call_sid, self._change(call_sid, "finish", change))

    def notify(
        self,
        account_sid: str,
        call_sid: str | None,
        *,
        log: int,
        error_code: int,
        message_text: str,
        request_url: str | None = None,
        request_method: str | None = None,
        request_variables: Mapping[str, str] | Sequence[tuple[str, str]] | str | None = None,
        response_body: str | bytes | None = None,
        api_version: str | None = None,
        message_date: datetime | None = None,
    ) -> str:
        """Log a Notification once (DOC-20) and queue its row; return its ``NO…`` SID.

        It goes on the lane of ``call_sid``, after that call's row.  ``api_version``
        defaults to the live call's; URL passwords become ``***`` in the log and the row;
        ``response_body`` is cut to 4 KiB; ``message_date`` defaults to now.
        """
        if log not in (0, 1):
            raise ValueError(f"log must be 0 (error) or 1 (warning), not {log!r}")
        _check("message_date", message_date)
        now = self._clock.utcnow()
        live = self._live.get(call_sid or "")
        sid = ids.new_sid(ids.NOTIFICATION)
        values = {
            "sid": sid,
            "account_sid": account_sid,
            "call_sid": call_sid,
            "api_version": api_version or (live[0] if live else "2010-04-01"),
            "log": log,
            "error_code": error_code,
            "more_info": f"{self._public_url}/docs/errors/{error_code}",
            "message_text": scrub(message_text),
            "message_date": message_date or now,
            "request_url": scrub(request_url) if request_url is not None else None,
            "request_method": request_method,
            "request_variables": form_encode(request_variables),
            "response_body": trim_body(response_body),
            "date_created": now,
            "date_updated": now,
        }
        logged = {name: values[name] for name in _LOGGED}
        (logger.error if log == 0 else logger.warning)(
            "notification", notification_sid=sid, **logged
        )
        lane = call_sid or f"account:{account_sid}"
        self._queue(lane, "notify", call_sid, _insert(Notification, values))
        return sid

    async def flush(self, call_sid: str | None = None) -> None:
        """Wait until the writes queued so far (of one call, or all) are applied or given up."""
        lanes = list(self._lanes.values()) if call_sid is None else [self._lanes.get(call_sid)]
        last = [lane.writes[-1].done for lane in lanes if lane is not None and lane.writes]
        if last:
            await asyncio.gather(*(asyncio.shield(done) for done in last))

    async def close(self, timeout: float = 5.0) -> None:
        """Refuse new writes, wait up to ``timeout`` s for queued ones, then abandon the rest."""
        self._closed = True
        try:
            async with asyncio.timeout(timeout):
                await self.flush()
        except TimeoutError:
            logger.error("records.abandoned", writes=self._pending)
            tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def live_count(self) -> int:
        """Calls created and not yet finished through this service."""
        return len(self._live)

    def stats(self) -> dict[str, int]:
        """``live_calls``, ``lanes``, ``pending`` and the outcome counters since start."""
        gauges = {"live_calls": len(self._live), "lanes": len(self._lanes)}
        return {**gauges, "pending": self._pending, **self._counts}

    # -- the lanes ----------------------------------------------------------------------

    def _change(self, call_sid: str, what: str, change: Callable[[Call], None]) -> Apply:
        async def apply(session: AsyncSession) -> bool:
            row = await Calls(session).by_sid(call_sid)
            if row is None:  # its create was given up, or never issued
                self._counts["missing"] += 1
                self._log_limited("records.call_missing", what=what, call_sid=call_sid)
                return False
            change(row)
            return True

        return apply

    def _queue(self, key: str, what: str, call_sid: str | None, apply: Apply) -> Receipt:
        loop = asyncio.get_running_loop()
        write = _Write(what, call_sid, apply, loop.create_future())
        if self._closed or self._pending >= self._max_pending:
            self._counts["dropped"] += 1
            reason = "closed" if self._closed else "queue full"
            self._log_limited("records.dropped", what=what, call_sid=call_sid, reason=reason)
            write.done.set_result(False)
            return Receipt(write.done)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
            lane.task = loop.create_task(self._run(key, lane), name=f"records:{key}")
        lane.writes.append(write)
        self._pending += 1
        return Receipt(write.done)

    async def _run(self, key: str, lane: _Lane) -> None:
        """Apply the lane's writes in order; the lane goes away when it is empty."""
        try:
            while lane.writes:
                ok = await self._apply(lane.writes[0])
                self._pending -= 1
                _resolve(lane.writes.popleft().done, ok)
        finally:
            while lane.writes:  # left only when close() cancelled us: abandoned
                self._pending -= 1
                self._counts["dropped"] += 1
                _resolve(lane.writes.popleft().done, False)
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _apply(self, write: _Write) -> bool:
        for attempt, delay in enumerate((*self._retry_delays, None), start=1):
            try:
                # The slot first: waiting for one does not count against the timeout.
                async with (
                    self._slots,
                    asyncio.timeout(self._attempt_timeout),
                    self._db.session() as tx,
                ):
                    ok = await write.apply(tx)
            except Exception as exc:
                failed = delay is None or not _transient(exc)
                self._counts["failed" if failed else "retried"] += 1
                event = "records.write_failed" if failed else "records.retrying"
                where = {"what": write.what, "call_sid": write.call_sid, "attempt": attempt}
                level = "error" if failed else "warning"
                self._log_limited(event, level, **where, error=_describe(exc))
                if failed:
                    return False
                await asyncio.sleep(delay or 0)
            else:
                self._counts["written"] += ok
                return ok
        raise AssertionError("unreachable: the last attempt returns")

    def _log_limited(self, event: str, level: str = "warning", **fields: Any) -> None:
        """Log ``event`` at most once a second, saying how many were left out meanwhile."""
        now = asyncio.get_running_loop().time()
        if now - self._last_logged.get(event, -1e9) < 1.0:
            self._suppressed[event] = self._suppressed.get(event, 0) + 1
            return
        self._last_logged[event] = now
        getattr(logger, level)(event, suppressed=self._suppressed.pop(event, 0), **fields)


def _insert(model: type[Call] | type[Notification], values: dict[str, Any]) -> Apply:
    async def apply(session: AsyncSession) -> bool:
        session.add(model(**values))  # a fresh object per attempt: a rollback taints the last
        return True

    return apply


def _check(name: str, value: Any) -> None:
    if name == "status" and value not in CALL_STATUSES:
        raise ValueError(f"unknown call status {value!r}")
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"{name} must be an aware UTC datetime")


def _transient(exc: BaseException) -> bool:
    """Whether trying again may help (a locked, unreachable or slow database)."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    return isinstance(exc, TimeoutError | OSError)


def _describe(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return f"{type(cause).__name__}: {cause}"[:300]


def _resolve(done: asyncio.Future[bool], ok: bool) -> None:
    if not done.done():
        done.set_result(ok)
