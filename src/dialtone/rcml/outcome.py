"""What a verb tells the interpreter (:data:`Outcome`) and what a run of RCML came to
(:class:`Ending`).

A verb is ``async def run(node, ctx) -> Outcome``.  It does its own work through the
:class:`~dialtone.rcml.context.CallContext` (``<Hangup>`` calls ``ctx.hangup()`` itself) and
then says how the document goes on:

============== ===============================================================================
``Next``        run the next verb of the current document
``Replace``     a ``<Redirect>`` or an action URL fetched ``document``: it replaces the rest of
                the current one (DOC-6)
``HungUp``      ``<Hangup>`` (or ``<Reject>`` on an answered call) ended the call (DOC-11)
``Rejected``    ``<Reject>`` refused an unanswered inbound call with ``reason`` (DOC-11)
``Declined``    ``<Hangup>`` or ``<Reject>`` in a whisper: the branch declines (WSP-6); nothing
                was sent, the Dial ends the branch
``Failed``      a fetch failed and its Notification is recorded (HOOK-9): end as "RCML error"
``Unavailable`` the verb is not implemented yet: a warning is recorded and the next verb runs
============== ===============================================================================

Outcomes are small frozen dataclasses; ``NEXT`` and ``FAILED`` are the shared instances of
the two that carry nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from dialtone.rcml.nodes import Document

__all__ = [
    "FAILED",
    "NEXT",
    "Declined",
    "Ending",
    "EndingKind",
    "Failed",
    "HungUp",
    "Next",
    "Outcome",
    "Rejected",
    "Replace",
    "Unavailable",
]

RejectReason = Literal["rejected", "busy"]


@dataclass(frozen=True, slots=True)
class Next:
    """Go on with the next verb of the current document."""


@dataclass(frozen=True, slots=True)
class Replace:
    """``document`` replaces the rest of the current one (DOC-6)."""

    document: Document


@dataclass(frozen=True, slots=True)
class HungUp:
    """The verb ended the call with ``ctx.hangup()`` (VRB-6; VRB-7 on an answered call)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The verb refused the unanswered call with ``ctx.reject(reason)`` (VRB-7)."""

    reason: RejectReason


@dataclass(frozen=True, slots=True)
class Declined:
    """A whisper executed ``<Hangup>`` or ``<Reject>`` (WSP-6); ``verb`` says which."""

    verb: Literal["Hangup", "Reject"]


@dataclass(frozen=True, slots=True)
class Failed:
    """A request failed; the context recorded its Notification (HOOK-9, VRB-8)."""


@dataclass(frozen=True, slots=True)
class Unavailable:
    """The verb is not available yet: the interpreter records warning ``code`` with
    ``message`` and runs the next verb."""

    code: int
    message: str


NEXT = Next()
FAILED = Failed()

#: What a verb returns.
Outcome = Next | Replace | HungUp | Rejected | Declined | Failed | Unavailable


class EndingKind(StrEnum):
    """How a run of RCML ended (see :class:`Ending`)."""

    COMPLETED = "completed"
    """The call was ended by end of document or ``<Hangup>`` (``ctx.hangup()`` was called)."""
    REJECTED = "rejected"
    """``<Reject>`` refused the unanswered call (``ctx.reject()`` was called)."""
    FAILED = "failed"
    """An RCML error (a failed fetch, 82020, 12400) ended the call (``ctx.fail()``)."""
    GONE = "gone"
    """The call went away while RCML ran (:class:`~dialtone.rcml.context.CallGone`)."""
    ACCEPTED = "accepted"
    """Whisper only: it ran out of verbs without ``<Hangup>``/``<Reject>`` (WSP-5)."""
    DECLINED = "declined"
    """Whisper only: ``<Hangup>`` or ``<Reject>`` ran (WSP-6)."""


@dataclass(frozen=True, slots=True)
class Ending:
    """What :func:`~dialtone.rcml.interpreter.run_call` came to.

    ``reason`` is the ``<Reject>`` reason for ``REJECTED``; ``code`` the Notification code
    for ``FAILED`` when the interpreter itself found the error (82020, 12400), None after a
    failed fetch (the context recorded that code).
    """

    kind: EndingKind
    reason: RejectReason | None = None
    code: int | None = None

    @property
    def whisper_accepted(self) -> bool:
        """True only for a whisper that accepted its branch (WSP-5)."""
        return self.kind is EndingKind.ACCEPTED

    def __str__(self) -> str:
        detail = self.reason or (str(self.code) if self.code is not None else "")
        return f"{self.kind.value}({detail})" if detail else self.kind.value
