"""``CallRecords``: how the call layer writes Call rows (CDRs) and Notifications (DOC-20).

Every write method returns at once: it validates its arguments, queues the write and returns
a :class:`Receipt`.  One writer task applies the queue in issue order, taking everything
queued so far (up to ``max_batch`` writes) into one transaction: the creates of the batch are
one INSERT executed over all their rows, its updates and finishes are merged per call into one
UPDATE by CallSid (or into that call's INSERT when the call was created in the same batch),
its Notifications one more INSERT.  The SQL is the store's (:mod:`dialtone.storage.call_store`:
``sqlite3`` on the loop's thread for the embedded SQLite file, an ``AsyncSession`` otherwise).
So ``create`` → ``update`` → ``finish`` of a call land in order even when issued
back-to-back without awaiting, and a busy server spends one transaction on hundreds of
changes instead of one each.  A create is written at once (RTE-4: the row exists before the
call's first webhook); changes alone wait until :data:`COALESCE` after the last transaction,
so a loaded server commits at most a few hundred times a second.

A slow or broken database never stops call control: no database failure is raised.  A
transient one (locked, unreachable, attempt timeout) is retried after each of
``retry_delays``, then the batch is given up; a permanent one (a constraint) splits the batch
and applies its writes one by one, so one bad write loses only itself.  Outcomes are counted
(:meth:`~CallRecords.stats`) and logged at most once a second per kind.  Awaiting a receipt is
optional; the call layer awaits where the row must exist before it goes on (RTE-4: an inbound
Call before its first webhook; ``POST /Calls`` before its ``201``).  Argument errors (unknown
field, naive datetime, unknown status) are the caller's bugs and raise ``ValueError``/
``TypeError``.

The composition root calls :meth:`CallRecords.close` after the call layer has ended its calls
and before the database is disposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections import deque
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

import structlog
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from dialtone import ids
from dialtone.clock import Clock
from dialtone.storage.call_store import CallStore, SessionSource, WritePlan, open_call_store
from dialtone.storage.models import Call

logger = structlog.get_logger("dialtone.calls.records")

CALL_STATUSES: Final = frozenset(
    {"queued", "ringing", "in-progress", "completed", "busy", "no-answer", "canceled", "failed"}
)
FINAL_STATUSES: Final = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})
DIRECTIONS: Final = frozenset({"inbound", "outbound-api", "outbound-dial"})
MAX_RESPONSE_BODY: Final = 4096
"""DOC-20: a Notification keeps the first 4 KiB (UTF-8 bytes) of a response body."""
RETRY_DELAYS: Final = (0.05, 0.25, 1.0, 3.0, 10.0)
COALESCE: Final = 0.005
"""Seconds between two transactions while only changes wait (a create goes at once: RTE-4):
at 150 calls/s a commit per loop turn cost a sixth of the server's CPU."""
_FIXED: Final = frozenset({"id", "sid", "account_sid", "date_created", "date_updated"})
"""Call columns that :meth:`CallRecords.update` cannot change."""
_LOGGED: Final = ("account_sid", "call_sid", "error_code", "log", "message_text", "request_url")
"""What the log line of a Notification carries (besides its SID): no bodies, no parameters."""
_USERINFO: Final = re.compile(r"(://)[^/\s@]+@")


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


_CALL_FIELDS: Final = tuple(prop.key for prop in Call.__mapper__.attrs if prop.key != "id")
"""Every column an INSERT of a Call row names (absent values are NULL)."""


@dataclass(slots=True)
class _Write:
    kind: str
    """``create``, ``update``, ``finish`` or ``notify``."""
    key: str
    """The call it belongs to (its CallSid), or ``account:AC…`` for a call-less Notification."""
    call_sid: str | None
    values: dict[str, Any]
    done: asyncio.Future[bool]
    answer_hint: datetime | None = None
    """``finish`` only: the answer time given to :meth:`CallRecords.update`, if any."""


class CallRecords:
    """Writes Calls and Notifications for the call layer: ordered per call, never raising."""

    def __init__(
        self,
        db: SessionSource,
        clock: Clock,
        *,
        public_url: str,
        store: CallStore | None = None,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        attempt_timeout: float = 5.0,
        max_pending: int = 10_000,
        max_batch: int = 500,
        coalesce: float = COALESCE,
    ) -> None:
        self._store = store or open_call_store(db)
        self._clock = clock
        self._public_url = public_url.rstrip("/")
        self._retry_delays = tuple(retry_delays)
        self._attempt_timeout = attempt_timeout
        self._max_pending = max_pending
        self._max_batch = max_batch
        self._coalesce = coalesce
        self._creates = 0  # creates in the queue: they are written without waiting
        self._last_batch = float("-inf")  # when the last transaction ended (loop time)
        self._queue: deque[_Write] = deque()
        self._inflight: list[_Write] = []
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()  # a create (or a full batch) ends the gathering wait
        self._writer: asyncio.Task[None] | None = None
        # The last queued write of each call (or account lane) not yet applied: flush(sid).
        self._last: dict[str, asyncio.Future[bool]] = {}
        # Live calls: CallSid -> (api_version, answer_time), from create() to finish().
        self._live: dict[str, tuple[str, datetime | None]] = {}
        self._closed = False
        names = ("written", "retried", "failed", "dropped", "missing", "batches")
        self._counts = dict.fromkeys(names, 0)
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
        return self._queue_write("create", call_sid, values)

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
        values = {**fields, "date_updated": self._clock.utcnow()}
        return self._queue_write("update", call_sid, values)

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
        values: dict[str, Any] = {
            "status": status,
            "end_time": end_time,
            "date_updated": self._clock.utcnow(),
        }
        if sip_response_code is not None:
            values["sip_response_code"] = sip_response_code
        return self._queue_write("finish", call_sid, values, answer_hint=remembered)

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

        It is written after the writes of ``call_sid`` queued before it.  ``api_version``
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
        self._queue_write("notify", call_sid, values, key=call_sid or f"account:{account_sid}")
        return sid

    async def flush(self, call_sid: str | None = None) -> None:
        """Wait until the writes queued so far (of one call, or all) are applied or given up."""
        if call_sid is None:
            last = [write.done for write in (*self._inflight, *self._queue)][-1:]
        else:
            last = [self._last[call_sid]] if call_sid in self._last else []
        if last:
            await asyncio.shield(last[0])

    async def close(self, timeout: float = 5.0) -> None:
        """Refuse new writes, wait up to ``timeout`` s for queued ones, then abandon the rest."""
        self._closed = True
        self._urgent.set()  # what is queued goes now
        try:
            async with asyncio.timeout(timeout):
                await self.flush()
        except TimeoutError:
            logger.error("records.abandoned", writes=self._pending())
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        self._store.close()

    def backlog(self) -> int:
        """Writes queued or being applied.  A server whose backlog grows cannot keep up; the
        call manager refuses new calls then (503) rather than lose records later."""
        return self._pending()

    def live_count(self) -> int:
        """Calls created and not yet finished through this service."""
        return len(self._live)

    def stats(self) -> dict[str, int]:
        """``live_calls``, ``queued_calls``, ``pending`` and the counters since start.

        ``written``, ``failed``, ``dropped`` and ``missing`` count writes; ``batches`` counts
        the transactions that committed and ``retried`` the attempts that were tried again.
        """
        gauges = {"live_calls": len(self._live), "queued_calls": len(self._last)}
        return {**gauges, "pending": self._pending(), **self._counts}

    # -- the writer ---------------------------------------------------------------------

    def _pending(self) -> int:
        return len(self._queue) + len(self._inflight)

    def _queue_write(
        self,
        kind: str,
        call_sid: str | None,
        values: dict[str, Any],
        *,
        key: str | None = None,
        answer_hint: datetime | None = None,
    ) -> Receipt:
        loop = asyncio.get_running_loop()
        key = key or call_sid or ""
        write = _Write(kind, key, call_sid, values, loop.create_future(), answer_hint)
        if self._closed or self._pending() >= self._max_pending:
            self._counts["dropped"] += 1
            reason = "closed" if self._closed else "queue full"
            self._log_limited("records.dropped", what=kind, call_sid=call_sid, reason=reason)
            write.done.set_result(False)
            return Receipt(write.done)
        self._queue.append(write)
        if kind == "create" or len(self._queue) >= self._max_batch:
            self._creates += kind == "create"
            self._urgent.set()
        self._last[key] = write.done
        self._wake.set()
        if self._writer is None:
            self._writer = loop.create_task(self._run(), name="records:writer")
        return Receipt(write.done)

    async def _run(self) -> None:
        """Apply the queue batch by batch, in order, for as long as the service lives."""
        try:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                wait = self._last_batch + self._coalesce - asyncio.get_running_loop().time()
                gather = not (self._creates or self._closed or len(self._queue) >= self._max_batch)
                if wait > 0 and gather:
                    # Let changes gather (fewer, larger commits) until a create comes.
                    self._urgent.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._urgent.wait()
                    continue
                count = min(len(self._queue), self._max_batch)
                self._inflight = [self._queue.popleft() for _ in range(count)]
                self._creates -= sum(write.kind == "create" for write in self._inflight)
                results = await self._apply(self._inflight)
                self._last_batch = asyncio.get_running_loop().time()
                batch, self._inflight = self._inflight, []
                for write, ok in zip(batch, results, strict=True):
                    self._settle(write, ok)
        finally:  # cancelled by close(): what is left is abandoned
            for write in (*self._inflight, *self._queue):
                self._counts["dropped"] += 1
                self._settle(write, False)
            self._inflight = []
            self._queue.clear()
            self._creates = 0

    def _settle(self, write: _Write, ok: bool) -> None:
        if self._last.get(write.key) is write.done:
            del self._last[write.key]
        if not write.done.done():
            write.done.set_result(ok)

    async def _apply(self, batch: list[_Write]) -> list[bool]:
        """Apply ``batch`` in one transaction; per write, whether it changed a row."""
        for attempt, delay in enumerate((*self._retry_delays, None), start=1):
            try:
                plan, depends = _plan(batch)
                async with asyncio.timeout(self._attempt_timeout):
                    missing = await self._store.write(plan)
                results = [sid is not None and sid not in missing for sid in depends]
            except Exception as exc:
                transient = _transient(exc)
                if not transient and len(batch) > 1:
                    # One bad write must not take the others with it: apply them one by one.
                    return [(await self._apply([write]))[0] for write in batch]
                failed = delay is None or not transient
                self._counts["failed" if failed else "retried"] += len(batch) if failed else 1
                event = "records.write_failed" if failed else "records.retrying"
                first = batch[0]
                where = {"what": first.kind, "call_sid": first.call_sid, "writes": len(batch)}
                level = "error" if failed else "warning"
                self._log_limited(event, level, **where, attempt=attempt, error=_describe(exc))
                if failed:
                    return [False] * len(batch)
                await asyncio.sleep(delay or 0)
            else:
                self._counts["batches"] += 1
                for write, ok in zip(batch, results, strict=True):
                    self._counts["written" if ok else "missing"] += 1
                    if not ok:  # its create was given up, or never issued
                        what, sid = write.kind, write.call_sid
                        self._log_limited("records.call_missing", what=what, call_sid=sid)
                return results
        raise AssertionError("unreachable: the last attempt returns")

    def _log_limited(self, event: str, level: str = "warning", **fields: Any) -> None:
        """Log ``event`` at most once a second, saying how many were left out meanwhile."""
        now = asyncio.get_running_loop().time()
        if now - self._last_logged.get(event, -1e9) < 1.0:
            self._suppressed[event] = self._suppressed.get(event, 0) + 1
            return
        self._last_logged[event] = now
        getattr(logger, level)(event, suppressed=self._suppressed.pop(event, 0), **fields)


def _plan(batch: Sequence[_Write]) -> tuple[WritePlan, list[str | None]]:
    """The statements of ``batch`` and, per write, what its success depends on.

    A change of a call created earlier in the batch is merged into that call's INSERT; a
    change of any other call into one UPDATE by CallSid per call, which succeeds when the row
    exists; a change of a call created later in the batch is "missing" at once.  Per write:
    ``""`` (succeeds with the transaction), a CallSid (succeeds if that UPDATE found its row)
    or None (missing).
    """
    created = {write.call_sid for write in batch if write.kind == "create"}
    plan = WritePlan()
    inserts: dict[str, dict[str, Any]] = {}
    depends: list[str | None] = []
    for write in batch:
        sid = write.call_sid or ""
        if write.kind == "create":
            inserts[sid] = dict.fromkeys(_CALL_FIELDS) | write.values
            plan.calls.append(inserts[sid])
        elif write.kind == "notify":
            plan.notifications.append(write.values)
        elif sid in inserts:
            _merge(inserts[sid], write)
        elif sid in created:  # its create comes later in the batch
            depends.append(None)
            continue
        else:
            _merge(plan.changes.setdefault(sid, {}), write)
            depends.append(sid)
            continue
        depends.append("")
    return plan, depends


def _merge(row: dict[str, Any], write: _Write) -> None:
    """Fold an update or finish into the values ``row`` will be written with."""
    if write.kind == "finish":
        # The answer time merged into the row, else the one remembered by update() (from an
        # earlier batch, or given up).
        answer = row.get("answer_time") or write.answer_hint
        if answer is not None:
            row["answer_time"] = answer
        row["duration"] = call_duration(answer, write.values["end_time"])
    row.update(write.values)


def _check(name: str, value: Any) -> None:
    if name == "status" and value not in CALL_STATUSES:
        raise ValueError(f"unknown call status {value!r}")
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"{name} must be an aware UTC datetime")


def _transient(exc: BaseException) -> bool:
    """Whether trying again may help (a locked, unreachable or slow database)."""
    if isinstance(exc, sqlite3.OperationalError):  # locked, busy, cannot open (the SQLite store)
        return True
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
