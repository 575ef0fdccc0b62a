"""``CallContext``: the only capabilities a verb has (design.md §4).

Verbs never see SIP, sockets or HTTP clients: they ask the context to answer the call,
play audio, collect digits, fetch a new document, record a Notification or end the call.
The call layer (``dialtone.calls``) implements this protocol for a live call; tests use a
fake.  Everything here is in RCML's vocabulary: URLs, methods, parameters, seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from dialtone.media.sources import Source
from dialtone.rcml.nodes import Dial, Document

CallState = Literal[
    "ringing", "in-progress", "completed", "busy", "no-answer", "canceled", "failed"
]


@dataclass(frozen=True, slots=True)
class PlayResult:
    """How a prompt ended: played to the end, or interrupted by the first digit of a Gather."""

    completed: bool
    first_digit: str | None = None


DialCallStatus = Literal["completed", "canceled", "busy", "failed", "no-answer"]
"""DialCallStatus (DIAL-40)."""


@dataclass(frozen=True, slots=True)
class DialResult:
    """What a ``<Dial>`` came to: the ``Dial…`` parameters of its action request (DIAL-41).

    ``caller_gone`` tells DIAL-42 (the caller goes on) from DIAL-43 (the action's answer is
    read and discarded, nothing else runs).
    """

    status: DialCallStatus
    dial_call_sid: str
    duration: int
    ring_duration: int
    bridged: bool
    caller_gone: bool

    def params(self) -> dict[str, str]:
        """The DIAL-41 parameters, in wire form."""
        return {
            "DialCallStatus": self.status,
            "DialCallSid": self.dial_call_sid,
            "DialCallDuration": str(self.duration),
            "DialRingDuration": str(self.ring_duration),
            "DialBridged": "true" if self.bridged else "false",
        }


class CallGone(Exception):
    """The call ended (the far end hung up, or the API ended it) while a verb was running.

    Any context method may raise it; the interpreter stops the document at once.
    """


class CallContext(Protocol):
    """A live call as RCML verbs see it."""

    @property
    def call_sid(self) -> str:
        """The call's CallSid."""
        ...

    @property
    def answered(self) -> bool:
        """Whether the call is answered (200 OK sent, or an outbound leg that answered)."""
        ...

    @property
    def status(self) -> CallState:
        """The call's status now (REQ-3)."""
        ...

    @property
    def whisper(self) -> bool:
        """True when this document runs as a whisper on a Dial branch (WSP-4..WSP-6)."""
        ...

    async def answer(self) -> None:
        """Answer an unanswered inbound call (200 OK with SDP; DOC-7). No-op when answered."""
        ...

    async def play(self, source: Source, *, interrupt_on_digit: bool = False) -> PlayResult:
        """Play 20 ms frames of ``source`` to the caller until it ends.

        With ``interrupt_on_digit`` the first DTMF digit stops playback at once (VRB-5); the
        digit stays queued for :meth:`next_digit` as well as being reported.
        """
        ...

    async def speech(self, text: str, voice: str, language: str) -> Source:
        """A source speaking ``text`` (espeak-ng, cached per text/voice/language; VRB-1)."""
        ...

    async def audio(self, url: str) -> Source | None:
        """A source playing the WAV at ``url`` (signed GET, cached); None after recording a
        warning Notification when it cannot be fetched or played (VRB-2: then skip)."""
        ...

    async def send_digits(self, digits: str) -> None:
        """Send RFC 4733 events (``w`` = 0.5 s pause, ``W`` = 1 s; VRB-2 ``digits``)."""
        ...

    async def pause(self, seconds: float) -> None:
        """Stay silent for ``seconds`` (comfort silence on an answered call; VRB-3)."""
        ...

    async def next_digit(self, timeout: float) -> str | None:
        """The next DTMF digit pressed (queued ones first), or None after ``timeout`` s."""
        ...

    def clear_digits(self) -> None:
        """Forget digits pressed before now (a new Gather starts clean)."""
        ...

    async def fetch(
        self,
        url: str,
        method: str,
        extra: Mapping[str, str] | None = None,
        *,
        fallback: tuple[str, str] | None = None,
    ) -> Document | None:
        """Request RCML with the call's voice request parameters plus ``extra``.

        Returns the validated document (its warnings already recorded as Notifications), or
        None when it failed: the context has then recorded the Notification(s) (HOOK-9,
        DOC-5) and the call must end as "RCML error".
        ``fallback`` (url, method) is tried once when the first request fails (only the
        call's voice URL has one).
        """
        ...

    def warn(
        self, code: int, message: str, *, element: str | None = None, line: int | None = None
    ) -> None:
        """Record a warning Notification (log 1) for this call.

        ``element`` (``Response/Reject[1]``) and ``line`` say where in the current document
        (the last one :meth:`fetch` returned, or the call's first) the problem is (DOC-21).
        """
        ...

    def error(
        self, code: int, message: str, *, element: str | None = None, line: int | None = None
    ) -> None:
        """Record an error Notification (log 0) for this call, as :meth:`warn` does.

        Used by the interpreter for errors found while running (82020, 12400); the call
        is then ended with :meth:`fail`.
        """
        ...

    async def dial(self, node: Dial) -> DialResult:
        """Run ``node`` (dial.md): ring its branches, bridge the winner, return the outcome
        once every branch has ended (DIAL-41).  Never called in a whisper (WSP-4)."""
        ...

    async def hangup(self) -> None:
        """End the call: BYE when answered; per DOC-11 when unanswered (603, 486/480 after a
        Dial outcome). Returns when the call is over."""
        ...

    async def reject(self, reason: Literal["rejected", "busy"]) -> None:
        """``<Reject>``: 603 or 486 to an unanswered inbound call (DOC-11, VRB-7)."""
        ...

    async def fail(self, code: int | None = None, message: str | None = None) -> None:
        """End the call after an RCML error already recorded (HOOK-9, DOC-11 "RCML error"):
        500 + Warning when unanswered, BYE when answered.

        ``code`` and ``message`` are what the Warning header quotes; None quotes the error
        this context recorded last (the one of the :meth:`fetch` that returned None).
        """
        ...
