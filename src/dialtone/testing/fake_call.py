"""A :class:`~dialtone.rcml.context.CallContext` for tests: scripted, recorded, fake time.

Nothing sleeps.  The fake keeps a virtual clock in whole milliseconds: playing a source
advances it 20 ms per frame, ``pause`` and ``next_digit`` advance it by their seconds (or to
the next scripted digit), ``send_digits`` by 200 ms a digit (``w`` 0.5 s, ``W`` 1 s).
Scripted digits arrive at virtual times; ``gone_at`` is when the far end hangs up: the
context method running then raises :class:`~dialtone.rcml.context.CallGone`, as every one
does after the call ended.  ``limit`` (an hour) stops a runaway test the same way.

::

    ctx = FakeCallContext(
        documents={"http://app.test/menu": "<Response><Say>Sales</Say></Response>"},
        digits=[(1.0, "1")],
    )
    ending = await run_call(ctx, rcml('<Response><Gather numDigits="1" action="/menu">'
                                      "<Say>Press 1</Say></Gather></Response>"))
    assert ("fetch", "http://app.test/menu", "POST", {"Digits": "1"}) in ctx.events

Events, in order, in :attr:`FakeCallContext.events`: ``("answer",)``,
``("play", description, completed)`` (``say:<text>``, ``play:<url>``, ``silence``),
``("pause", seconds)``, ``("send_digits", digits)``, ``("timeout", seconds)`` (a
``next_digit`` that got nothing), ``("fetch", url, method, extra)``, ``("warn", code)``,
``("error", code)``, ``("hangup",)``, ``("reject", reason)``, ``("fail", code)``,
``("gone",)``.  :attr:`~FakeCallContext.notifications` holds the full Notifications.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from dialtone.media.sources import (
    SILENT_FRAME,
    AudioError,
    PcmSource,
    Silence,
    Source,
    load_wav,
)
from dialtone.media.tts import SpeechEngine
from dialtone.rcml.context import CallContext, CallGone, CallState, DialResult, PlayResult
from dialtone.rcml.errors import RcmlError
from dialtone.rcml.nodes import Dial, Document
from dialtone.rcml.parser import parse_document

__all__ = ["Event", "FakeCallContext", "FakeSource", "Notification", "Response", "rcml"]

#: A scripted answer to a fetch: a document, RCML text (parsed as ``text/xml``), or None
#: for a failed request (11200).
Response = Document | str | None
#: A function of (url, method, extra) giving the answer, for answers that depend on them.
Responder = Callable[[str, str, Mapping[str, str]], Response]
Event = tuple[object, ...]

_FRAME_MS = 20
_DIGIT_MS = {"w": 500, "W": 1000}
_SEND_DIGIT_MS = 200


def rcml(xml: str, url: str = "http://app.test/voice", *, whisper: bool = False) -> Document:
    """Parse RCML text fetched from ``url`` (the first document of a test)."""
    return parse_document(xml.encode(), url, content_type="text/xml", whisper=whisper)


@dataclass(frozen=True, slots=True)
class Notification:
    """A recorded Notification: ``log`` 0 is an error, 1 a warning (DOC-20)."""

    code: int
    log: int
    message: str
    element: str | None = None
    line: int | None = None


class FakeSource:
    """Labelled audio of the fake: ``pcm``, or ``seconds`` of silence frames."""

    __slots__ = ("_frames", "_pcm", "description")

    def __init__(self, description: str, *, seconds: float = 1.0, pcm: bytes | None = None):
        self.description = description
        self._pcm: PcmSource | None = None if pcm is None else PcmSource(pcm)
        self._frames = 0 if pcm is not None else max(1, round(seconds * 1000) // _FRAME_MS)

    def next_frame(self) -> bytes | None:
        """The next frame, None at the end."""
        if self._pcm is not None:
            return self._pcm.next_frame()
        if self._frames <= 0:
            return None
        self._frames -= 1
        return SILENT_FRAME


def _describe(source: Source) -> str:
    """The event label of a source, looking through wrappers that keep it as ``inner``."""
    inner: object = source
    while hasattr(inner, "inner"):
        inner = inner.inner
    if isinstance(inner, FakeSource):
        return inner.description
    if isinstance(inner, Silence):
        return "silence"
    return type(inner).__name__


class FakeCallContext:
    """A scripted call (see the module docstring).

    ``documents`` maps absolute URLs to a :data:`Response` or a :data:`Responder`; an
    unknown URL fails like a 404.  ``audio`` maps ``<Play>`` URLs to seconds of audio, WAV
    bytes, or None (fetch failure, warning 11200); unlisted URLs play ``audio_seconds``.
    ``speech`` seconds are ``seconds_per_character`` × the text length, unless a real
    :class:`~dialtone.media.tts.SpeechEngine` is given (then warning 13511 is recorded for
    mapped voices, as the call layer does).
    """

    def __init__(
        self,
        *,
        call_sid: str = "CA" + "0" * 32,
        answered: bool = False,
        whisper: bool = False,
        documents: Mapping[str, Response | Responder] | None = None,
        digits: Iterable[tuple[float, str]] = (),
        gone_at: float | None = None,
        audio: Mapping[str, float | bytes | None] | None = None,
        audio_seconds: float = 1.0,
        speech: SpeechEngine | None = None,
        seconds_per_character: float = 0.05,
        limit: float = 3600.0,
        dial: Callable[[Dial], DialResult] | None = None,
    ) -> None:
        self._call_sid = call_sid
        self._dial = dial
        self._answered = answered
        self._whisper = whisper
        self.documents = dict(documents or {})
        self.audio_files = dict(audio or {})
        self.audio_seconds = audio_seconds
        self.engine = speech
        self.seconds_per_character = seconds_per_character
        self._pending = deque(
            sorted(((round(t * 1000), d) for t, keys in digits for d in keys), key=lambda p: p[0])
        )
        self._queue: deque[str] = deque()
        self._gone_ms = None if gone_at is None else round(gone_at * 1000)
        self._limit_ms = round(limit * 1000)
        self._now_ms = 0
        self._final: CallState | None = None
        self._last_error: int | None = None
        self.events: list[Event] = []
        self.notifications: list[Notification] = []

    # --- what tests look at -------------------------------------------------------------

    @property
    def now(self) -> float:
        """Virtual seconds since the call started."""
        return self._now_ms / 1000

    @property
    def ended(self) -> bool:
        """Whether the call is over (ended by a verb, or gone)."""
        return self._final is not None

    def codes(self, log: int | None = None) -> list[int]:
        """The codes of the Notifications recorded so far (only errors or warnings with
        ``log`` 0 or 1)."""
        return [n.code for n in self.notifications if log is None or n.log == log]

    def kinds(self) -> list[object]:
        """The first element of every event: ``["answer", "play", "fetch", ...]``."""
        return [event[0] for event in self.events]

    # --- CallContext ----------------------------------------------------------------------

    @property
    def call_sid(self) -> str:
        """The scripted CallSid."""
        return self._call_sid

    @property
    def answered(self) -> bool:
        """Whether :meth:`answer` ran (or the call started answered)."""
        return self._answered

    @property
    def status(self) -> CallState:
        """``ringing``, ``in-progress``, then the final status."""
        if self._final is not None:
            return self._final
        return "in-progress" if self._answered else "ringing"

    @property
    def whisper(self) -> bool:
        """The scripted whisper flag."""
        return self._whisper

    async def answer(self) -> None:
        """Record ``("answer",)`` once."""
        self._check()
        if not self._answered:
            self._answered = True
            self.events.append(("answer",))

    async def play(self, source: Source, *, interrupt_on_digit: bool = False) -> PlayResult:
        """Pull every frame (20 ms of virtual time each) unless a digit interrupts."""
        self._check()
        label = _describe(source)
        try:
            while True:
                if interrupt_on_digit:
                    self._promote()
                    if self._queue:
                        self.events.append(("play", label, False))
                        return PlayResult(completed=False, first_digit=self._queue[0])
                if source.next_frame() is None:
                    self.events.append(("play", label, True))
                    return PlayResult(completed=True)
                self._advance_to(self._now_ms + _FRAME_MS)
        except CallGone:
            self.events.append(("play", label, False))
            raise

    async def speech(self, text: str, voice: str, language: str) -> Source:
        """A :class:`FakeSource` labelled ``say:<text>`` (real audio with ``speech``)."""
        self._check()
        if self.engine is None:
            return FakeSource(f"say:{text}", seconds=len(text) * self.seconds_per_character)
        spoken = await self.engine.render(text, voice, language)
        if spoken.mapped:
            self.warn(13511, f"{spoken.choice.note} (espeak-ng voice {spoken.voice})")
        return FakeSource(f"say:{text}", pcm=spoken.pcm)

    async def audio(self, url: str) -> Source | None:
        """The scripted audio of ``url``, or None after warning 11200 or 13420."""
        self._check()
        scripted = self.audio_files.get(url, self.audio_seconds)
        if scripted is None:
            self.warn(11200, f"{url}: HTTP 404 (scripted)")
            return None
        if isinstance(scripted, bytes):
            try:
                return FakeSource(f"play:{url}", pcm=load_wav(scripted))
            except AudioError as exc:
                self.warn(13420, f"{url}: {exc}")
                return None
        return FakeSource(f"play:{url}", seconds=scripted)

    async def send_digits(self, digits: str) -> None:
        """Record ``("send_digits", digits)``; 200 ms a digit, ``w`` 0.5 s, ``W`` 1 s."""
        self._check()
        self.events.append(("send_digits", digits))
        self._advance_to(self._now_ms + sum(_DIGIT_MS.get(d, _SEND_DIGIT_MS) for d in digits))

    async def pause(self, seconds: float) -> None:
        """Record ``("pause", seconds)`` and let the time pass."""
        self._check()
        self.events.append(("pause", seconds))
        self._advance_to(self._now_ms + round(seconds * 1000))

    async def next_digit(self, timeout: float) -> str | None:
        """A queued digit, else the next scripted one within ``timeout``, else None."""
        self._check()
        self._promote()
        if not self._queue:
            deadline = self._now_ms + round(timeout * 1000)
            if self._pending and self._pending[0][0] <= deadline:
                self._advance_to(self._pending[0][0])
                self._promote()
            else:
                self._advance_to(deadline)
                self.events.append(("timeout", timeout))
                return None
        return self._queue.popleft()

    def clear_digits(self) -> None:
        """Forget the digits that arrived up to now."""
        self._promote()
        self._queue.clear()

    async def fetch(
        self,
        url: str,
        method: str,
        extra: Mapping[str, str] | None = None,
        *,
        fallback: tuple[str, str] | None = None,
    ) -> Document | None:
        """Record ``("fetch", url, method, extra)`` and answer from ``documents``.

        Like the call layer, a fetch still goes out once the call is over (the action of a
        Dial whose caller left, DIAL-43); before that a due hang-up is noticed."""
        if self._final is None:
            self._check()
        params = dict(extra or {})
        document = self._fetch_one(url, method, params)
        if document is None and fallback is not None:
            document = self._fetch_one(fallback[0], fallback[1], params)
        return document

    def warn(
        self, code: int, message: str, *, element: str | None = None, line: int | None = None
    ) -> None:
        """Record warning ``code``."""
        self.events.append(("warn", code))
        self.notifications.append(Notification(code, 1, message, element, line))

    def error(
        self, code: int, message: str, *, element: str | None = None, line: int | None = None
    ) -> None:
        """Record error ``code`` (it becomes the one :meth:`fail` quotes by default)."""
        self.events.append(("error", code))
        self.notifications.append(Notification(code, 0, message, element, line))
        self._last_error = code

    async def dial(self, node: Dial) -> DialResult:
        """Record ``("dial", destinations)``; the result is the ``dial`` given, else a
        Dial nobody answered (``no-answer``, the caller still there)."""
        self._check()
        self.events.append(("dial", len(node.nouns)))
        if self._dial is not None:
            result = self._dial(node)
            if result.caller_gone:
                self._final = "completed" if self._answered else "canceled"
            elif result.bridged and not self._answered:
                self._answered = True
            return result
        return DialResult("no-answer", "CA" + "1" * 32, 0, node.timeout, False, False)

    async def hangup(self) -> None:
        """Record ``("hangup",)``; the call is over."""
        self._check()
        self.events.append(("hangup",))
        self._final = "completed" if self._answered else "no-answer"

    async def reject(self, reason: Literal["rejected", "busy"]) -> None:
        """Record ``("reject", reason)``; only an unanswered call may be rejected."""
        self._check()
        if self._answered:
            raise RuntimeError("reject() on an answered call")
        self.events.append(("reject", reason))
        self._final = "busy" if reason == "busy" else "no-answer"

    async def fail(self, code: int | None = None, message: str | None = None) -> None:
        """Record ``("fail", code)``, the last recorded error's code when None."""
        self._check()
        self.events.append(("fail", self._last_error if code is None else code))
        self._final = "completed" if self._answered else "failed"

    # --- the fake's own machinery ---------------------------------------------------------

    def _fetch_one(self, url: str, method: str, params: dict[str, str]) -> Document | None:
        self.events.append(("fetch", url, method, params))
        if url not in self.documents:
            self.error(11200, f"{url}: HTTP 404 (no document scripted)")
            return None
        scripted = self.documents[url]
        response = scripted(url, method, params) if callable(scripted) else scripted
        if response is None:
            self.error(11200, f"{url}: HTTP 500 (scripted failure)")
            return None
        if isinstance(response, Document):
            return response
        try:
            document = rcml(response, url, whisper=self._whisper)
        except RcmlError as exc:
            self.error(exc.code, exc.message_text, element=exc.element, line=exc.line)
            return None
        for warning in document.warnings:
            self.warn(warning.code, warning.message_text, element=warning.element)
        return document

    def _check(self) -> None:
        """Raise CallGone once the call is over."""
        if self._final is not None:
            raise CallGone(f"call {self._call_sid} is over ({self._final})")
        if self._gone_ms is not None and self._now_ms >= self._gone_ms:
            self._go()

    def _advance_to(self, target_ms: int) -> None:
        """Move the clock; stop at the hang-up (or the limit) and raise CallGone there."""
        end = self._limit_ms if self._gone_ms is None else min(self._gone_ms, self._limit_ms)
        if target_ms >= end:
            self._now_ms = max(self._now_ms, end)
            self._go()
        self._now_ms = max(self._now_ms, target_ms)

    def _go(self) -> None:
        self.events.append(("gone",))
        self._final = "completed" if self._answered else "canceled"
        raise CallGone(f"call {self._call_sid} hung up at {self.now} s")

    def _promote(self) -> None:
        """Queue the scripted digits whose time has come."""
        while self._pending and self._pending[0][0] <= self._now_ms:
            self._queue.append(self._pending.popleft()[1])


def _satisfies_protocol(ctx: FakeCallContext) -> CallContext:
    """Checked by mypy: the fake implements the whole protocol."""
    return ctx
