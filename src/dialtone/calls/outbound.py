"""An outbound-api call (API-20, API-21): dialled from ``POST /Calls``, its RCML runs when
it answers.

The call's INVITEs are a Dial of their own: every binding of a ``client:`` destination is
one attempt, the first 2xx wins and the others are cancelled (API-21), ``Timeout`` ends the
ringing ``no-answer``.  :class:`Attempts` is the :class:`~dialtone.calls.dial.DialRun` that
rings them, with one difference: the attempts are the *same* Call, so the call-progress
events (CB-3) are the call's — ``initiated`` and ``ringing`` once, ``answered`` for the
winner, ``completed`` when the call ends — and no child rows are written.  When the
winner is "bridged" nothing is bridged: the call's RCML starts on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Literal

import structlog

from dialtone.calls.branch import BranchLeg
from dialtone.calls.control import OriginateRequest
from dialtone.calls.dial import DialRun, DialSettings, Signalling
from dialtone.calls.fork import BranchEnded, BranchEvent, Bridge, BridgeEnd
from dialtone.calls.leg import Leg
from dialtone.calls.services import CallServices
from dialtone.calls.steering import DialSlot
from dialtone.calls.targets import Target
from dialtone.media.session import MediaSession
from dialtone.rcml.context import CallGone, CallState, DialResult
from dialtone.rcml.interpreter import run_call
from dialtone.rcml.nodes import ClientNoun, Dial, Document, Noun, NumberNoun, SipNoun
from dialtone.webhooks.params import CallInfo, status_callback_params

__all__ = ["Attempts", "OutboundCall"]

log = structlog.get_logger("dialtone.calls")

_NO_LIMIT = None  # API calls have no timeLimit


def destination(request: OriginateRequest) -> Noun:
    """The noun that dials ``request.to`` (LEG-1), as a ``<Dial>`` would."""
    if request.to_kind == "client":
        return ClientNoun(element="Calls", line=0, login=request.to.removeprefix("client:"))
    if request.to_kind == "number":
        return NumberNoun(element="Calls", line=0, number=request.to)
    return SipNoun(element="Calls", line=0, uri=request.to, headers=request.sip_headers)


class Attempts(DialRun):
    """The INVITEs of one outbound-api call (module docstring)."""

    def __init__(
        self,
        call: OutboundCall,
        node: Dial,
        services: CallServices,
        signalling: Signalling,
        settings: DialSettings,
    ) -> None:
        super().__init__(call, node, services, signalling, settings, lambda: call.media)
        self.call = call
        self._fired: set[str] = set()
        self.last_code: int | None = None

    def _time_limit(self) -> float | None:
        return _NO_LIMIT

    def _new_branch(self, index: int, target: Target) -> BranchLeg:
        call = self.call
        return BranchLeg(
            self.services,
            index=index,
            target=target,
            call_sid=call.sid,
            info=call.info,
            media=None,
            base_url=None,
        )

    def _identity(self, branch: BranchLeg) -> list[tuple[str, str]]:
        return [
            ("X-Dialtone-CallSid", self.call.sid),
            ("X-Dialtone-AccountSid", self.services.account_sid),
        ]

    def _event(self, command: BranchEvent) -> None:
        if command.event == "completed" or command.event in self._fired:
            return  # the call's own completed comes when it ends
        if command.event == "answered" and command.branch != self._fork.winner:
            return
        self._fired.add(command.event)
        self.call.progress(command.event, command.status)

    def _ended(self, command: BranchEnded) -> None:
        branch = self.branches[command.branch]
        branch.end(command.status)
        if command.sip_code is not None:
            self.last_code = command.sip_code
        if branch is self._winner:
            self.last_code = 200
            self.call.far_end_gone()

    def _bridge(self, command: Bridge) -> None:
        self._winner = self.branches[command.branch]
        self.call.connected()

    def _ring_caller(self) -> None:
        """Nobody waits for ringback."""

    def _close_media(self, branch: BranchLeg) -> None:
        """The media is the call's, shared by every attempt."""

    def hang_up(self) -> None:
        """dialtone ends the answered call: BYE (the RCML ended, or the API)."""
        if self.fork is not None:
            self._apply(self.fork.bridge_ended(BridgeEnd.API, self.services.loop_time()))


class OutboundCall(Leg):
    """One outbound-api call and the CallContext of its RCML (module docstring)."""

    def __init__(
        self,
        services: CallServices,
        request: OriginateRequest,
        *,
        call_sid: str,
        media: MediaSession,
        signalling: Signalling,
        settings: DialSettings,
        dial: Callable[[OutboundCall, Dial], DialRun],
        on_end: Callable[[OutboundCall], None],
    ) -> None:
        info = CallInfo(
            call_sid=call_sid,
            account_sid=request.account_sid,
            from_=request.from_,
            to=request.to,
            status="queued",
            direction="outbound-api",
            api_version=request.api_version,
        )
        super().__init__(services, call_sid=call_sid, media=media, info=info, status="ringing")
        self.request = request
        self.signalling = signalling
        self.settings = settings
        self._dialer = dial
        self._on_end = on_end
        self._attempts: Attempts | None = None
        self._rcml: asyncio.Task[None] | None = None
        self._next: Document | None = request.twiml
        self._dial = DialSlot()
        self._digits_sent = False
        self._ended = False
        self._answered_at: float | None = None

    # -- DialParent (a Dial run from this call's RCML) ----------------------------------

    @property
    def display_name(self) -> str | None:
        """API calls have no caller display name."""
        return None

    def early_media(self) -> None:
        """Answered already: ringback plays on the call (DIAL-32)."""

    def answer_now(self) -> None:
        """Answered already."""

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Ring, run the RCML once answered, end; always cleans up (records, callback)."""
        node = Dial(
            element="Calls",
            line=0,
            nouns=(destination(self.request),),
            timeout=self.request.timeout,
        )
        attempts = Attempts(self, node, self.services, self.signalling, self.settings)
        self._attempts = attempts
        result: DialResult | None = None
        try:
            result = await attempts.run()
            if self._rcml is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._rcml
        except Exception:
            log.exception("call.failed", call_sid=self.sid)
        finally:
            self._finish(result)
            await self._dial.drain()  # a Dial it left by a redirect: its branches' ends
            if not self.media.closed:  # no attempt went out (API-21: no device): still ours
                with contextlib.suppress(Exception):
                    await self.media.close()

    def progress(self, event: str, status: str) -> None:
        """CB-3 for the call: ``initiated``, ``ringing``, ``answered``."""
        if event == "initiated":
            self.services.records.update(self.sid, status="ringing")
        elif event == "ringing":
            self._status = "ringing"
        self._callback(event, status)

    def connected(self) -> None:
        """The first 2xx was kept: the call is in progress, its RCML starts (API-21)."""
        now = self.services.utcnow()
        self._answered = True
        self._status = "in-progress"
        self._answered_at = self.services.loop_time()
        self.services.records.update(self.sid, status="in-progress", answer_time=now)
        self._rcml = asyncio.get_running_loop().create_task(self._run_rcml())

    def far_end_gone(self) -> None:
        """The called party hung up (or was hung up on): the RCML stops."""
        self._ended = True
        if self._status == "in-progress":
            self._status = "completed"
        self._gone.set()
        self.media.stop_playback()
        if self._dial.caller_gone():
            return  # DIAL-43: the Dial ends, then its action request
        if self._rcml is not None and self._rcml is not asyncio.current_task():
            self._rcml.cancel()

    def cancel(self) -> None:
        """API-24 ``canceled`` (or ``completed`` while ringing): the attempts are cancelled."""
        if self._attempts is not None and not self._answered:
            self._attempts.caller_gone()

    def end(self) -> None:
        """API-24 ``completed``: BYE when answered, else as ``canceled``."""
        if self._answered:
            if self._attempts is not None:
                self._attempts.hang_up()
        else:
            self.cancel()

    def redirect(self, document: Document) -> None:
        """API-25: run ``document`` now (answered) or when the call answers; a Dial
        running ends at once and its action URL is not requested."""
        self._next = document
        if self._answered and self._rcml is not None and not self._ended:
            self._dial.leave()
            self.media.stop_playback()
            self._rcml.cancel()
            self._rcml = asyncio.get_running_loop().create_task(self._run_rcml())

    @property
    def dialing(self) -> bool:
        """Whether a Dial of this call's RCML is running."""
        return self._dial.active

    async def _run_rcml(self) -> None:
        try:
            document = self._next
            self._next = None
            request = self.request
            if document is None and request.url is not None:
                fallback = (
                    (request.fallback_url, request.fallback_method)
                    if request.fallback_url
                    else None
                )
                document = await self.fetch(request.url, request.method, fallback=fallback)
            else:
                for warning in document.warnings if document is not None else ():
                    self.warn(warning.code, warning.message_text)
            if document is None:
                await self.fail()
                return
            if request.send_digits and not self._digits_sent:  # once, not per redirect
                self._digits_sent = True
                await self.send_digits(request.send_digits)
            await run_call(self, document)
        except (CallGone, asyncio.CancelledError):
            return
        except Exception:
            log.exception("call.rcml_failed", call_sid=self.sid)
            await self.fail()

    def _finish(self, result: DialResult | None) -> None:
        status: CallState = "failed"
        if result is not None:
            status = "completed" if result.bridged else result.status
        self._status = status
        self._ended = True
        self._gone.set()
        end = self.services.utcnow()
        code = self._attempts.last_code if self._attempts is not None else None
        self.services.records.finish(self.sid, status, end, code)
        duration = 0
        if self._answered_at is not None:
            duration = max(0, round(self.services.loop_time() - self._answered_at))
        self._callback("completed", status, duration=duration, code=code)
        self._on_end(self)

    def _callback(
        self, event: str, status: str, *, duration: int | None = None, code: int | None = None
    ) -> None:
        request = self.request
        if request.status_callback is None or event not in request.status_callback_events:
            return
        params = status_callback_params(
            self._info.with_status(status), call_duration=duration, sip_response_code=code
        )
        self.services.callbacks.fire(
            self.sid,
            request.status_callback,
            request.status_callback_method,
            params,
            auth_token=self.services.auth_token,
            timestamp=self.services.utcnow(),
            last=event == "completed",
        )

    # -- CallContext: answering, dialling and ending -----------------------------------------

    async def answer(self) -> None:
        """The call is answered before its RCML runs."""

    async def dial(self, node: Dial) -> DialResult:
        """A Dial from the call's RCML: this call is the (answered) parent."""
        self._check()
        return await self._dial.dial(self._dialer(self, node))

    async def hangup(self) -> None:
        """BYE (DOC-11): the attempts' winner is ended."""
        if self._attempts is not None and not self._ended:
            self._attempts.hang_up()

    async def reject(self, reason: Literal["rejected", "busy"]) -> None:
        """An answered call cannot be rejected: hang up (VRB-7)."""
        await self.hangup()

    async def fail(self, code: int | None = None, message: str | None = None) -> None:
        """An RCML error on an answered call: BYE (HOOK-9)."""
        if self._attempts is not None and not self._ended:
            self._attempts.hang_up()
