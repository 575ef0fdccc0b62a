"""Status-callback lanes: one ordered queue per (CallSid, callback URL) (CB-7, CB-10..CB-13).

Call control calls :meth:`CallbackDispatcher.fire` synchronously when an event happens and
goes on at once (CB-11): ``fire`` takes the lane's next SequenceNumber, stamps the parameters
and queues them, without awaiting anything.  Each lane is one task that sends its callbacks
one at a time, in SequenceNumber order, the next only after the previous got a response or
gave up (HOOK-6); lanes run independently, so a slow or dead callback server delays only its
own lane.  A lane's task ends when its queue is empty and the lane disappears (a new event
starts it again), so :meth:`~CallbackDispatcher.lane_count` counts live lanes.

::

    dispatcher = CallbackDispatcher(client, on_failure=record_15003)
    n = dispatcher.fire(call_sid, url, "POST", params, auth_token=token, timestamp=when)
    ...
    await dispatcher.drain(grace=10)      # CB-13: --shutdown-grace

Numbering (CB-7): ``0, 1, 2, …`` per (CallSid, URL without fragment), no gaps.  A number is
taken when the event fires; a callback that is never delivered still used it; retries of
one callback reuse its number and Timestamp (the client resends the same parameters).

Bound: a lane holds at most ``max_queued`` callbacks waiting behind the one in flight
(default 64; a leg fires at most four events per URL, CB-3, so only a runaway caller reaches
it).  Past the bound the *oldest waiting* callback is dropped (the newest state, such as
``completed``, is kept) and reported through ``on_failure`` like any undelivered callback.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import structlog

from dialtone.webhooks.client import (
    CallbackOutcome,
    Expired,
    LoopSleeper,
    Sleeper,
    WebhookError,
    bounded,
)
from dialtone.webhooks.params import format_timestamp
from dialtone.webhooks.urls import split_fragment

__all__ = ["MAX_QUEUED", "CallbackDispatcher", "CallbackSender", "FailureHook"]

log = structlog.get_logger("dialtone.webhooks")

MAX_QUEUED = 64
"""Default bound of callbacks waiting in one lane (behind the one in flight)."""
UNDELIVERED = 15003
"""The code of a callback the dispatcher never sent (dropped, or cut off by shutdown)."""

FailureHook = Callable[[WebhookError, int], None]
"""Called with the error and the SequenceNumber of each callback that finally failed or was
never sent; it records warning Notification 15003 (CB-12).  Must not block."""


class CallbackSender(Protocol):
    """What the dispatcher needs of :class:`~dialtone.webhooks.client.WebhookClient`."""

    async def post_callback(
        self, url: str, method: str, params: Sequence[tuple[str, str]], *, auth_token: str
    ) -> CallbackOutcome:
        """Send one status callback with its retries; never raise for request failures."""
        ...


@dataclass(frozen=True, slots=True)
class _Callback:
    """One fired callback: everything needed to send it, fixed at fire time."""

    sequence_number: int
    url: str
    method: str
    params: tuple[tuple[str, str], ...]
    auth_token: str
    ready: Awaitable[object] | None = None


@dataclass(slots=True)
class _Lane:
    """The queue and task of one (CallSid, URL) pair."""

    key: tuple[str, str]
    waiting: deque[_Callback] = field(default_factory=deque)
    current: _Callback | None = None
    task: asyncio.Task[None] | None = None


class CallbackDispatcher:
    """Delivers status callbacks in order per lane and in parallel across lanes (CB-10).

    ``sender`` sends one callback with its retries (a ``WebhookClient``); ``on_failure``
    records the 15003 warnings; ``sleeper`` times :meth:`drain` (default: the event loop).
    """

    def __init__(
        self,
        sender: CallbackSender,
        *,
        on_failure: FailureHook | None = None,
        sleeper: Sleeper | None = None,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self._sender = sender
        self._on_failure = on_failure
        self._sleeper: Sleeper = sleeper or LoopSleeper()
        self._max_queued = max_queued
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._numbers: dict[tuple[str, str], int] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def fire(
        self,
        call_sid: str,
        url: str,
        method: str,
        params: Iterable[tuple[str, str]],
        *,
        auth_token: str,
        timestamp: datetime,
        last: bool = False,
        ready: Awaitable[object] | None = None,
    ) -> int:
        """Queue a status callback and return its SequenceNumber; never blocks (CB-11).

        ``url`` is absolute and may carry fragment overrides; the lane is (``call_sid``, the
        URL without fragment).  ``params`` are the CB-5 fields; ``SequenceNumber`` and
        ``Timestamp`` (when the event occurred, ``timestamp``) are set here, replacing any
        given.  ``last`` says nothing more will fire on this lane (the ``completed`` event,
        CB-8): the lane's counter is then forgotten, so a later ``fire`` would start at 0.
        ``ready`` (the call's row being written) is awaited before the request goes out, so
        an app that acts on the callback finds the call in the API.  Must be called from
        the event loop's thread.
        """
        method = method.upper()
        if method not in ("GET", "POST"):
            raise ValueError(f"status callback method must be GET or POST, not {method!r}")
        key = (call_sid, split_fragment(url)[0])
        number = self._numbers.pop(key, 0)
        if not last:
            self._numbers[key] = number + 1
        stamped = [(n, v) for n, v in params if n not in ("SequenceNumber", "Timestamp")]
        stamped += [("SequenceNumber", str(number)), ("Timestamp", format_timestamp(timestamp))]
        stamped.sort(key=lambda pair: pair[0])
        callback = _Callback(number, url, method, tuple(stamped), auth_token, ready)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key)
            self._idle.clear()
            lane.task = asyncio.get_running_loop().create_task(
                self._run(lane), name=f"callbacks {call_sid} {key[1]}"
            )
        elif len(lane.waiting) >= self._max_queued:
            dropped = lane.waiting.popleft()
            self._undelivered(dropped, f"dropped: more than {self._max_queued} callbacks waiting")
        lane.waiting.append(callback)
        return number

    def lane_count(self) -> int:
        """Lanes with a callback waiting or in flight (for ``/dialtone/stats.json``)."""
        return len(self._lanes)

    def pending_count(self) -> int:
        """Callbacks waiting or in flight, over all lanes."""
        return sum(len(lane.waiting) + (lane.current is not None) for lane in self._lanes.values())

    async def drain(self, grace: float) -> bool:
        """Wait up to ``grace`` seconds for every lane to empty, then cancel the rest (CB-13).

        Callbacks fired while draining are waited for too.  Returns True when all lanes
        emptied in time; otherwise each callback cut off (in flight or waiting) is reported
        through ``on_failure`` and False is returned.
        """
        try:
            await bounded(self._sleeper, self._idle.wait(), grace)
            return True
        except Expired:
            pass
        lanes = list(self._lanes.values())
        for lane in lanes:
            if lane.task is not None:
                lane.task.cancel()
        await asyncio.gather(*(lane.task for lane in lanes if lane.task), return_exceptions=True)
        for lane in lanes:
            cut = ([lane.current] if lane.current else []) + list(lane.waiting)
            lane.current = None
            lane.waiting.clear()
            for callback in cut:
                self._undelivered(callback, f"not delivered: shutdown grace of {grace:g} s ended")
        return not lanes

    async def _run(self, lane: _Lane) -> None:
        """Send the lane's callbacks one at a time until its queue is empty."""
        try:
            while lane.waiting:
                callback = lane.current = lane.waiting.popleft()
                if callback.ready is not None:  # the Call row first (it never raises)
                    await callback.ready
                outcome = await self._send(callback)
                lane.current = None
                if not outcome.ok and outcome.error is not None:
                    self._report(outcome.error, callback.sequence_number)
        finally:
            if self._lanes.get(lane.key) is lane:
                del self._lanes[lane.key]
            if not self._lanes:
                self._idle.set()

    async def _send(self, callback: _Callback) -> CallbackOutcome:
        try:
            return await self._sender.post_callback(
                callback.url, callback.method, callback.params, auth_token=callback.auth_token
            )
        except Exception as exc:  # a bug in the sender must not stop the lane
            log.exception("callback_sender_failed", url=split_fragment(callback.url)[0])
            error = self._error(callback, f"not delivered: internal error ({exc!r})")
            return CallbackOutcome(False, None, 0, error)

    @staticmethod
    def _error(callback: _Callback, message: str) -> WebhookError:
        url = split_fragment(callback.url)[0]
        return WebhookError(UNDELIVERED, message, url, callback.method, callback.params, attempts=0)

    def _undelivered(self, callback: _Callback, message: str) -> None:
        self._report(self._error(callback, message), callback.sequence_number)

    def _report(self, error: WebhookError, sequence_number: int) -> None:
        if self._on_failure is None:
            return
        try:
            self._on_failure(error, sequence_number)
        except Exception:  # the hook's failure must not stop the lane
            log.exception("callback_failure_hook_failed", url=error.url)
