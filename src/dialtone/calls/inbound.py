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
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

import structlog

from dialtone.calls.audio import AudioFailure
from dialtone.calls.records import call_duration
from dialtone.calls.routing import Route
from dialtone.calls.services import CallServices
from dialtone.media.session import MediaSession
from dialtone.media.sources import PcmSource, Silence, Source
from dialtone.rcml.context import CallGone, CallState, PlayResult
from dialtone.rcml.errors import RcmlError
from dialtone.rcml.interpreter import run_call
from dialtone.rcml.nodes import Document
from dialtone.rcml.parser import parse_document
from dialtone.sip.dialog_uas import UasDialog
from dialtone.sip.events import Peer
from dialtone.sip.message import Request
from dialtone.webhooks.client import WebhookError
from dialtone.webhooks.params import CallInfo, status_callback_params, voice_params
from dialtone.webhooks.urls import UrlError, resolve

log = structlog.get_logger("dialtone.calls")

FINAL_BY_STATUS = {"busy": 486, "no-answer": 603, "failed": 500, "canceled": 487}


class InboundCall:
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
    ) -> None:
        self.services = services
        self.sid = call_sid
        self.invite = invite
        self.transaction = transaction
        self.peer = peer
        self.dialog = dialog
        self.media = media
        self.answer_sdp = answer_sdp
        self.route = route
        self._status: CallState = "ringing"
        self._answered = False
        self._ended = False
        self._gone = asyncio.Event()
        self._interpreter: asyncio.Task[object] | None = None
        self._last_error: tuple[int, str] = (12400, "internal failure")
        self._final_code: int | None = None
        self._answered_at: datetime | None = None
        self._current_url: str | None = None
        self._info = CallInfo(
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

    # -- CallContext: state ------------------------------------------------------------

    @property
    def call_sid(self) -> str:
        """The CallSid."""
        return self.sid

    @property
    def answered(self) -> bool:
        """Whether the 200 OK went out."""
        return self._answered

    @property
    def status(self) -> CallState:
        """The status now (REQ-3)."""
        return self._status

    @property
    def whisper(self) -> bool:
        """Inbound calls are never whispers."""
        return False

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Fetch the voice URL and run its RCML until the call ends; always cleans up."""
        self._interpreter = asyncio.current_task()
        try:
            document = await self._first_document()
            if document is None:
                await self.fail()
            else:
                await run_call(self, document)
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
        if self._interpreter is not None and self._interpreter is not asyncio.current_task():
            self._interpreter.cancel()

    def _check(self) -> None:
        if self._gone.is_set():
            raise CallGone

    # -- CallContext: media ----------------------------------------------------------------------

    async def answer(self) -> None:
        """200 OK with the SDP answer (DOC-7)."""
        self._check()
        if self._answered:
            return
        now = self.services.loop_time()
        response = self.dialog.answer(self.answer_sdp, now, transaction=self.transaction)
        self.services.respond(self.transaction, response)
        self.services.dialog_changed()
        self._answered = True
        self._status = "in-progress"
        self._answered_at = self.services.utcnow()
        self.services.records.update(self.sid, status="in-progress", answer_time=self._answered_at)

    async def play(self, source: Source, *, interrupt_on_digit: bool = False) -> PlayResult:
        """Play on the call's media; a hang-up stops it (CallGone)."""
        self._check()
        completed = await self.media.play(source, interrupt_on_digit=interrupt_on_digit)
        self._check()
        return PlayResult(completed=completed)

    async def speech(self, text: str, voice: str, language: str) -> Source:
        """espeak-ng speech (VRB-1); a mapped voice/language records 13511."""
        speech = await self.services.speech.render(text, voice, language)
        if speech.mapped:
            self.warn(13511, f"voice {voice!r} / language {language!r}: {speech.choice.note}")
        return speech.source()

    async def audio(self, url: str) -> Source | None:
        """The WAV at ``url`` (VRB-2), or None after a warning."""
        result = await self.services.audio.pcm(url, self.services.auth_token)
        if isinstance(result, AudioFailure):
            self.warn(result.code, result.message)
            return None
        return PcmSource(result)

    async def send_digits(self, digits: str) -> None:
        """RFC 4733 events."""
        self._check()
        await self.media.send_digits(digits)

    async def pause(self, seconds: float) -> None:
        """Comfort silence when answered; a plain wait while ringing (VRB-3)."""
        self._check()
        if self._answered:
            await self.media.play(Silence(seconds))
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gone.wait(), seconds)
        self._check()

    async def next_digit(self, timeout: float) -> str | None:
        """The next digit, or None after ``timeout``."""
        self._check()
        digit = await self.media.digits.get(timeout)
        self._check()
        return digit

    def clear_digits(self) -> None:
        """Forget earlier digits."""
        self.media.digits.clear()

    # -- CallContext: documents and notifications ---------------------------------------------

    async def fetch(
        self,
        url: str,
        method: str,
        extra: Mapping[str, str] | None = None,
        *,
        fallback: tuple[str, str] | None = None,
    ) -> Document | None:
        """Request and validate RCML (HOOK-9 fallback for the voice URL only)."""
        document = await self._fetch_one(url, method, extra)
        if document is None and fallback is not None:
            document = await self._fetch_one(fallback[0], fallback[1], extra)
        return document

    async def _fetch_one(
        self, url: str, method: str, extra: Mapping[str, str] | None
    ) -> Document | None:
        base = self._current_url or self.services.public_url + "/"
        params = voice_params(self._info.with_status(self._status), dict(extra or {}))
        try:
            target = resolve(url, base)
            response = await self.services.webhooks.fetch_rcml(
                target, method, params, auth_token=self.services.auth_token
            )
            document = parse_document(
                response.body, response.final_url, content_type=response.content_type
            )
        except UrlError as exc:
            self._record(0, exc.code, str(exc), url, method, params)
            return None
        except WebhookError as exc:
            self._record(0, exc.code, exc.message, exc.url, exc.method, params, exc.body_prefix)
            return None
        except RcmlError as exc:
            self._record(0, exc.code, exc.message_text, url, method, params)
            return None
        for warning in document.warnings:
            self._record(1, warning.code, warning.message_text, document.url, method, params)
        self._current_url = document.url
        return document

    def _record(
        self,
        log_level: int,
        code: int,
        message: str,
        url: str | None = None,
        method: str | None = None,
        params: object = None,
        body: bytes | str | None = None,
    ) -> None:
        if log_level == 0:
            self._last_error = (code, message)
        self.services.records.notify(
            self.services.account_sid,
            self.sid,
            log=log_level,
            error_code=code,
            message_text=message,
            request_url=url,
            request_method=method,
            request_variables=params,  # type: ignore[arg-type]
            response_body=body,
        )

    def warn(
        self, code: int, message: str, *, element: str | None = None, line: int | None = None
    ) -> None:
        """A warning Notification about the current document."""
        self._record(1, code, _where(message, element, line, self._current_url))

    def error(
        self, code: int, message: str, *, element: str | None = None, line: int | None = None
    ) -> None:
        """An error Notification about the current document."""
        self._record(0, code, _where(message, element, line, self._current_url))

    # -- CallContext: ending ---------------------------------------------------------------------

    async def hangup(self) -> None:
        """BYE when answered; 603 when unanswered (DOC-11; Dial outcomes come with Dial)."""
        if self._ended:
            return
        if self._answered:
            self._send_bye()
            self._end("completed", None)
        else:
            self.services.respond(self.transaction, self.dialog.reject(603))
            self._end("no-answer", 603)

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


def _where(message: str, element: str | None, line: int | None, url: str | None) -> str:
    """DOC-21: ``Response/Say[1] (line 2) of http://…: message``."""
    prefix = element or ""
    if line is not None:
        prefix += f" (line {line})"
    if url:
        prefix += f" of {url}"
    return f"{prefix.strip()}: {message}" if prefix.strip() else message
