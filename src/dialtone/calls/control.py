"""The seam between the REST API and the call layer: placing and steering calls.

The REST API (:mod:`dialtone.api.calls_write`) validates ``POST /Calls`` (API-20) and
``POST /Calls/{CallSid}`` (API-24, API-25) and translates them into the requests below;
the call layer implements :class:`CallControl` and does the SIP.  Nothing here does I/O.

Every value in a request is final: URLs are absolute (a relative one resolved against
``--public-url``, HOOK-3) with their fragment kept for the webhook client (HOOK-4), methods
are ``GET``/``POST``, ``To`` is normalised and Twiml is a validated
:class:`~dialtone.rcml.nodes.Document`.  What only the live call can know (is it still
ringing, is it a branch, has it ended just now) is the call layer's to check; it answers
with :class:`CallControlError`, which the API turns into the Twilio-shaped error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from dialtone.errors import DialtoneError
from dialtone.rcml.nodes import Document

__all__ = [
    "CallControl",
    "CallControlError",
    "ModifyRequest",
    "ModifyStatus",
    "Notice",
    "OriginateRequest",
    "ToKind",
]

ToKind = Literal["client", "number", "sip"]
ModifyStatus = Literal["canceled", "completed"]


@dataclass(frozen=True, slots=True)
class Notice:
    """A warning about the request (log 1) to record as a Notification of the call (DOC-20)."""

    code: int
    message_text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginateRequest:
    """``POST /Calls``: one outbound-api call to place (API-20, API-21)."""

    account_sid: str
    """The owning account (REQ-1 ``AccountSid``)."""
    api_version: str
    """``2010-04-01``, or ``2012-04-24`` when the Restcomm prefix was used (API-1, REQ-4)."""
    to: str
    """The destination in wire form, as stored in the Call's ``to`` and sent as REQ-1 ``To``:
    ``client:<login>``, the normalised number (``+1 (555) 000-1111`` → ``+15550001111``), or
    the SIP URI without its header part (API-20)."""
    to_kind: ToKind
    """Which of the three ``to`` is (LEG-1 picks the Request-URI by it)."""
    client_sid: str | None
    """The Client's sid when ``to_kind`` is ``client`` (it exists at validation time; its
    bindings all ring as attempts of this call, none makes the call end ``failed``, API-21)."""
    sip_headers: tuple[tuple[str, str], ...]
    """``to_kind == "sip"``: the URI's ``?name=value`` headers, unescaped, names ``X-``
    prefixed, in order, to add to the INVITE as for ``<Sip>`` (LEG-4); else empty."""
    from_: str
    """``From`` as given (≤ 64: a number, ``client:<login>`` or a SIP user token; API-20).
    It is the Call's ``from``, REQ-1 ``From``, and, minus any ``client:``, the INVITE's From
    user (LEG-1)."""
    url: str | None
    """``Url``: the RCML to run when the call answers (API-21); None when ``twiml`` is given
    instead.  When both are given the URL wins, as on Twilio."""
    method: str
    """``Method`` of ``url`` (default ``POST``)."""
    fallback_url: str | None
    """``FallbackUrl``: tried when ``url`` fails (HOOK-9); None without ``url``."""
    fallback_method: str
    """``FallbackMethod`` (default ``POST``)."""
    twiml: Document | None
    """``Twiml``: inline RCML, already validated (API-20); its ``url`` is ``--public-url`` +
    ``/`` (the base of its relative URLs, HOOK-3) and its ``warnings`` are still to record."""
    status_callback: str | None
    """``StatusCallback`` (CB-1)."""
    status_callback_method: str
    """``StatusCallbackMethod`` (default ``POST``, CB-1)."""
    status_callback_events: frozenset[str]
    """The effective subscription (CB-2), a subset of ``initiated ringing answered
    completed``: empty without ``status_callback``, ``{"completed"}`` when the callback came
    without an event list (or an empty one)."""
    timeout: int
    """``Timeout``: seconds of ringing, 1–600, default 60; then the call ends ``no-answer``
    (API-20, API-21, CB-4)."""
    send_digits: str | None
    """``SendDigits`` (Twilio's; not in the spec): DTMF ``[0-9*#w]{1,32}`` to send once the
    call answers, ``w`` = 0.5 s pause, as ``<Number sendDigits>``."""
    notices: tuple[Notice, ...] = ()
    """Warnings to record on the new call (e.g. 12200: ``StatusCallbackEvent`` without
    ``StatusCallback``, CB-2)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModifyRequest:
    """``POST /Calls/{CallSid}``: end a call (API-24) or run new RCML on it (API-25).

    Exactly one of ``status``, ``url`` and ``twiml`` is set.
    """

    account_sid: str
    """The owning account; the Call row exists in it and had not ended when the API read it."""
    call_sid: str
    """The call to modify: inbound, outbound-api or a branch (API-24, API-25)."""
    status: ModifyStatus | None
    """API-24: ``canceled`` ends a call not yet answered (an answered one is left alone);
    ``completed`` ends any live call."""
    url: str | None
    """API-25: stop the current verb at once and run the RCML of this URL on the call.  A
    parent inside a Dial leaves it (the Dial ends at once, no action request); an answered
    branch leaves its Dial and runs it as a call of its own (same CallSid)."""
    method: str
    """``Method`` of ``url`` (default ``POST``)."""
    fallback_url: str | None
    """``FallbackUrl`` of ``url`` (HOOK-9); None without ``url``."""
    fallback_method: str
    """``FallbackMethod`` (default ``POST``)."""
    twiml: Document | None
    """API-25 with inline RCML, already validated (as in :class:`OriginateRequest`)."""


class CallControlError(DialtoneError):
    """The call layer refuses a request: the API answers ``status`` with Twilio ``code``.

    ``CallControlError(400, 21220, "Call CA… is not in progress")`` for a call that ended or
    is not live in this process, or a branch not answered yet given ``url``/``twiml``
    (API-25); ``404``/20404 for a call it does not know at all.
    """

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class CallControl(Protocol):
    """What the REST API asks of the call layer (implemented there, faked in tests)."""

    async def originate(self, request: OriginateRequest) -> str:
        """Create the outbound-api call and start dialling it at once (API-21).

        Returns the new CallSid.  When it returns, the Call row exists in storage with
        status ``queued`` (the API reads it back for the ``201``); dialling goes on in the
        call's own task, never in the HTTP request's.  Raises :class:`CallControlError`
        when the call cannot be created (e.g. the server is draining: 503).
        """
        ...

    async def modify(self, request: ModifyRequest) -> None:
        """Apply a Status (API-24) or new RCML (API-25) to a live call.

        Returns once the change is under way (CANCEL/BYE sent or the new document started);
        the API then renders the Call row as stored.  Raises ``CallControlError(400, 21220,
        …)`` when the call is not live or, for ``url``/``twiml``, is a branch that has not
        answered.
        """
        ...
