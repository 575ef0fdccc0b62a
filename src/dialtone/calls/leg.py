"""What every leg RCML runs on shares: media verbs, document fetches, Notifications.

:class:`Leg` implements the media and document half of
:class:`~dialtone.rcml.context.CallContext` for one call leg: an inbound call
(:class:`~dialtone.calls.inbound.InboundCall`) or the called party of a Dial branch while its
whisper runs (:class:`~dialtone.calls.branch.BranchLeg`).  How a leg is answered and ended is
SIP, and stays in those subclasses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from dialtone.calls.audio import AudioFailure
from dialtone.calls.services import CallServices
from dialtone.media.session import MediaSession
from dialtone.media.sources import PcmSource, Silence, Source
from dialtone.rcml.context import CallGone, CallState, PlayResult
from dialtone.rcml.errors import RcmlError
from dialtone.rcml.nodes import Document
from dialtone.rcml.parser import parse_document
from dialtone.webhooks.client import WebhookError
from dialtone.webhooks.params import CallInfo, voice_params
from dialtone.webhooks.urls import UrlError, resolve

__all__ = ["Leg", "where"]


class Leg:
    """The media verbs and webhooks of one leg; subclasses add answering and ending."""

    def __init__(
        self,
        services: CallServices,
        *,
        call_sid: str,
        media: MediaSession,
        info: CallInfo,
        status: CallState,
        whisper: bool = False,
        base_url: str | None = None,
    ) -> None:
        self.services = services
        self.sid = call_sid
        self.media = media
        self._info = info
        self._status: CallState = status
        self._whisper = whisper
        self._answered = False
        self._gone = asyncio.Event()
        self._last_error: tuple[int, str] = (12400, "internal failure")
        self._current_url: str | None = base_url

    # -- CallContext: state ---------------------------------------------------------------

    @property
    def call_sid(self) -> str:
        """The CallSid."""
        return self.sid

    @property
    def answered(self) -> bool:
        """Whether the leg is answered."""
        return self._answered

    @property
    def status(self) -> CallState:
        """The status now (REQ-3)."""
        return self._status

    @property
    def whisper(self) -> bool:
        """True for a Dial branch's called party (WSP-4..WSP-6)."""
        return self._whisper

    @property
    def info(self) -> CallInfo:
        """The REQ-1 facts of this leg, with its status now."""
        return self._info.with_status(self._status)

    def _check(self) -> None:
        if self._gone.is_set():
            raise CallGone

    # -- CallContext: media ---------------------------------------------------------------

    async def play(self, source: Source, *, interrupt_on_digit: bool = False) -> PlayResult:
        """Play on the leg's media; a hang-up stops it (CallGone)."""
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

    # -- CallContext: documents and notifications -----------------------------------------

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
        params = voice_params(self.info, dict(extra or {}))
        try:
            target = resolve(url, base)
            response = await self.services.webhooks.fetch_rcml(
                target, method, params, auth_token=self.services.auth_token
            )
            document = parse_document(
                response.body,
                response.final_url,
                content_type=response.content_type,
                whisper=self._whisper,
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
        self._record(1, code, where(message, element, line, self._current_url))

    def error(
        self, code: int, message: str, *, element: str | None = None, line: int | None = None
    ) -> None:
        """An error Notification about the current document."""
        self._record(0, code, where(message, element, line, self._current_url))


def where(message: str, element: str | None, line: int | None, url: str | None) -> str:
    """DOC-21: ``Response/Say[1] (line 2) of http://…: message``."""
    prefix = element or ""
    if line is not None:
        prefix += f" (line {line})"
    if url:
        prefix += f" of {url}"
    return f"{prefix.strip()}: {message}" if prefix.strip() else message
