"""One inbound call answered by dialtone: the :class:`CallContext` its RCML runs on.

Lifecycle (DOC-1, DOC-7, DOC-11, DOC-12, RTE-4): the Call row is created as ``ringing``,
``180 Ringing`` goes out before the first webhook, media is opened and the SDP offer
answered, the voice URL (then its fallback) is fetched, and the interpreter runs. The
call ends by the RCML (hangup, reject, error), by the caller (CANCEL, BYE) or by the
server; whichever way, the dialog ends, media is closed, the row is finished and the
number's status callback fires (CB-14).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import structlog

from dialtone.calls.records import call_duration
from dialtone.calls.routing import Route
from dialtone.calls.services import CallServices
from dialtone.calls.steering import SteeredLeg
from dialtone.media.session import MediaSession
from dialtone.rcml.context import CallGone, CallState, DialResult
from dialtone.rcml.nodes import Dial, Document
from dialtone.sip.dialog_uas import UasDialog
from dialtone.sip.events import Peer
from dialtone.sip.message import Request
from dialtone.webhooks.params import CallInfo, status_callback_params
from dialtone.webhooks.urls import UrlError, resolve

if TYPE_CHECKING:
    from dialtone.calls.dial import DialRun

log = structlog.get_logger("dialtone.calls")

Dialer = Callable[["InboundCall", Dial], "DialRun"]
"""Builds the b2bua of one ``<Dial>`` on a call (the call manager's)."""

#: DOC-11: an unanswered caller's final response after a Dial without a winner.
AFTER_DIAL: dict[str, tuple[int, CallState]] = {
    "busy": (486, "busy"),
    "no-answer": (480, "no-answer"),
    "failed": (480, "no-answer"),
}


class InboundCall(SteeredLeg):
    """A live inbound call and its RCML context."""

    def __init__(
        self,
        services: CallServices,
        *,
        call_sid: str,
        invite: Request,
        transaction: str,
        peer: Peer,
        dialog: UasDialog,
        media: MediaSession,
        answer_sdp: bytes,
        route: Route,
        dialer: Dialer | None = None,
    ) -> None:
        info = CallInfo(
            call_sid=call_sid,
            account_sid=services.account_sid,
            from_=route.from_,
            to=route.to,
            status="ringing",
            direction="inbound",
            api_version=route.api_version,
            caller_name=_display_name(invite),
            forwarded_from=_diversion_user(invite),
            sip_headers=tuple(invite.headers.items()),
        )
        super().__init__(services, call_sid=call_sid, media=media, info=info, status="ringing")
        self.invite = invite
        self.transaction = transaction
        self.peer = peer
        self.dialog = dialog
        self.answer_sdp = answer_sdp
        self.route = route
        self._dialer = dialer
        self._dial_status: str | None = None
        self._final_code: int | None = None
        self._answered_at: datetime | None = None

    @property
    def display_name(self) -> str | None:
        """The caller's display name (LEG-1 copies it into branch INVITEs)."""
        return self._info.caller_name

    # -- running ---------------------------------------------------------------------------

    async def run(self, first: Document | None = None) -> None:
        """Run ``first`` (else the voice URL's RCML) until the call ends; always cleans up.

        API-25 replaces the running document, also in the middle of a Dial
        (:meth:`~dialtone.calls.steering.SteeredLeg.redirect`).
        """
        try:
            if not await self._interpret(first):
                await self.fail()
        except CallGone:
            pass
        except asyncio.CancelledError:
            if not self._gone.is_set():
                raise
        except Exception:  # DOC-13: log with the CallSid, end this call cleanly
            log.exception("call.failed", call_sid=self.sid)
            self.error(12400, "internal failure while running the call")
            with contextlib.suppress(Exception):
                await self.fail(12400, "internal failure")
        finally:
            await self._cleanup()

    # -- the REST API (API-24; API-25 is SteeredLeg.redirect) ---------------------------

    def end_by_api(self, status: str) -> None:
        """API-24: ``canceled`` ends an unanswered call (487); ``completed`` any call."""
        if self._ended or (status == "canceled" and self._answered):
            return
        if self._answered:
            self._send_bye()
            self._end("completed", None)
        else:
            self.caller_cancelled()

    async def _first_document(self) -> Document | None:
        route = self.route
        if not route.voice_url:
            return None
        fallback = (route.fallback_url, route.fallback_method) if route.fallback_url else None
        return await self.fetch(route.voice_url, route.voice_method, fallback=fallback)

    # -- remote events ------------------------------------------------------------------------

    def caller_cancelled(self) -> None:
        """CANCEL: answer the INVITE 487 and stop everything (SIP-10, DOC-11)."""
        if self._ended:
            return
        self.services.respond(self.transaction, self.dialog.reject(487))
        self._end("canceled", 487)

    def caller_hung_up(self) -> None:
        """BYE from the caller (already answered 200 by the dialog layer)."""
        if not self._ended:
            self._end("completed" if self._answered else "canceled", None)

    def ack_timeout(self) -> None:
        """Our 2xx was never acknowledged: BYE and end (RFC 3261 §13.3.1.4)."""
        if not self._ended:
            self._send_bye()
            self._end("completed", None)

    def shutdown(self) -> None:
        """Server shutdown (CB-13): unanswered callers get 503, answered ones BYE."""
        if self._ended:
            return
        if self._answered:
            self._send_bye()
            self._end("completed", None)
        else:
            self.services.respond(self.transaction, self.dialog.reject(503))
            self._end("failed", 503)

    def _end(self, status: CallState, code: int | None) -> None:
        self._ended = True
        self._status = status
        self._final_code = code if code is not None else (200 if self._answered else None)
        self._gone.set()
        self.media.stop_playback()
        if self._dial.caller_gone():
            return  # DIAL-34/DIAL-43: the Dial ends, then its action request
        if self._interpreter is not None and self._interpreter is not asyncio.current_task():
            self._interpreter.cancel()

    # -- CallContext: answering and dialling ---------------------------------------------

    async def answer(self) -> None:
        """200 OK with the SDP answer (DOC-7)."""
        self._check()
        self.answer_now()

    def answer_now(self) -> None:
        """200 OK with the SDP answer, now (DOC-7, DIAL-33)."""
        if self._answered or self._ended:
            return
        now = self.services.loop_time()
        response = self.dialog.answer(self.answer_sdp, now, transaction=self.transaction)
        self.services.respond(self.transaction, response)
        self.services.dialog_changed()
        self._answered = True
        self._status = "in-progress"
        self._answered_at = self.services.utcnow()
        self.services.records.update(self.sid, status="in-progress", answer_time=self._answered_at)

    def early_media(self) -> None:
        """DIAL-30: ``180 Ringing`` with the SDP answer, for the ringback's early media."""
        if not self._answered and not self._ended:
            self.services.respond(self.transaction, self.dialog.provisional(180, self.answer_sdp))

    async def dial(self, node: Dial) -> DialResult:
        """Run the Dial's b2bua until every branch has ended (dial.md)."""
        self._check()
        if self._dialer is None:
            raise RuntimeError("this call cannot dial")
        result = await self._dial.dial(self._dialer(self, node))
        self._dial_status = result.status
        return result

    # -- CallContext: ending ---------------------------------------------------------------------

    async def hangup(self) -> None:
        """BYE when answered; 603 when unanswered (DOC-11; Dial outcomes come with Dial)."""
        if self._ended:
            return
        if self._answered:
            self._send_bye()
            self._end("completed", None)
        else:
            status, state = AFTER_DIAL.get(self._dial_status or "", (603, "no-answer"))
            self.services.respond(self.transaction, self.dialog.reject(status))
            self._end(state, status)

    async def reject(self, reason: Literal["rejected", "busy"]) -> None:
        """603 or 486 to the unanswered caller (VRB-7)."""
        if self._ended:
            return
        if self._answered:
            await self.hangup()
            return
        status = 486 if reason == "busy" else 603
        self.services.respond(self.transaction, self.dialog.reject(status))
        self._end("busy" if reason == "busy" else "no-answer", status)

    async def fail(self, code: int | None = None, message: str | None = None) -> None:
        """RCML error: 500 + Warning when unanswered, BYE when answered (HOOK-9)."""
        if self._ended:
            return
        if code is None or message is None:
            code, message = self._last_error
        if self._answered:
            self._send_bye()
            self._end("completed", None)
            return
        response = self.dialog.reject(500, warning=f"{code} {message}"[:200])
        self.services.respond(self.transaction, response)
        self._end("failed", 500)

    def _send_bye(self) -> None:
        with contextlib.suppress(Exception):
            self.services.send_request(self.dialog.build_bye(), self.peer)

    async def _cleanup(self) -> None:
        if not self._ended:  # the interpreter returned without ending: end of document
            await self.hangup()
        self.services.forget(self)
        await self.media.close()
        end = self.services.utcnow()
        self.services.records.finish(self.sid, self._status, end, self._final_code)
        self._number_callback(end)
        await self._dial.drain()  # a Dial it left by a redirect: its branches' ends

    def _number_callback(self, end: datetime) -> None:
        """CB-14: the number's StatusCallback gets one callback when the call ends."""
        route = self.route
        if not route.status_callback:
            return
        try:
            url = resolve(route.status_callback, self.services.public_url + "/")
        except UrlError as exc:
            self._record(1, exc.code, str(exc), route.status_callback)
            return
        duration = call_duration(self._answered_at, end)
        params = status_callback_params(
            self._info.with_status(self._status),
            call_duration=duration,
            sip_response_code=self._final_code,
        )
        self.services.callbacks.fire(
            self.sid,
            url,
            route.status_callback_method,
            params,
            auth_token=self.services.auth_token,
            timestamp=end,
            last=True,
        )


def _display_name(invite: Request) -> str | None:
    try:
        return invite.from_.display_name or None
    except Exception:
        return None


def _diversion_user(invite: Request) -> str | None:
    value = invite.headers.get("Diversion")
    if not value:
        return None
    start, end = value.find("sip:"), value.find("@")
    return value[start + 4 : end] if 0 <= start < end else None
