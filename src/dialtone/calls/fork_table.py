"""Every transition of one `<Dial>` branch, in one table (h11 ``_state.py`` style).

:data:`TRANSITIONS` maps ``(state, signal)`` to the :class:`Rule` that handles it; the
interpreter is :class:`dialtone.calls.fork.Fork`, which also owns the rules that span
branches.  The commands it emits are the frozen dataclasses at the end of this module.
The rules the table follows:

1. **A live branch is never decided.**  ``pending`` and ``ringing`` branches are ringing
   for an open Dial.  The moment a winner is chosen (DIAL-21/23), the caller leaves
   (DIAL-34) or the branch's own ``timeout`` expires (DIAL-35), every affected branch is
   moved out of those states in the same step, so a 2xx on a live branch is always kept
   (DIAL-20) and a 2xx on any other branch never is (rule 5).
2. **Ending an unanswered branch** (DIAL-23): with a provisional response already in
   (any 1xx, 100 included: RFC 3261 §9.1) it gets ``Cancel`` and waits in ``canceling``
   with its final status already decided (``canceled``, or ``no-answer`` for a timeout:
   DIAL-25's "487 after a timeout-caused CANCEL").  It ends at its final response, or
   :data:`CANCEL_WAIT` seconds after the CANCEL.  With no response yet it is marked and
   ends at once (``completed`` event, no SipResponseCode); its CANCEL is *deferred*.
3. **Ending an answered branch** (whisper running, or the winner) is a ``Bye`` (unless the
   callee sent BYE) and ends it at once with status ``completed`` (WSP-6, WSP-9, DIAL-36,
   DIAL-37, DIAL-44), or ``failed`` for a whisper failure (WSP-7).  CallDuration runs from
   the answer (CB-6).
4. **Decided statuses stick**: a final response on a ``canceling`` branch ends it with the
   status decided before and that response's code as SipResponseCode (CB-5).
5. **Every 2xx not kept gets** ``AckAndBye`` (DIAL-24, LEG-6): on a ``canceling`` branch
   it ends the branch (BYE sent, status kept, code 200); on an ended branch (ended by the
   2 s rule, marked with a deferred CANCEL, or failed by another fork's final response)
   and on a branch that already kept a 2xx (a second fork's answer) it is SIP clean-up
   only.  No ``answered`` event is fired for it (CB-3).
6. **A deferred CANCEL is sent on the first later provisional** (RFC 3261 §9.1), and
   dropped on a final response: clean-up only, no event.
7. Inputs with no row are *absorbed*: they are the losing side of a race (a whisper
   result after its branch lost, a timer of a state left behind, a 487 after the 2 s
   rule) and change nothing.  Rules 5 and 6 are the only commands a branch can get after
   its ``completed`` event; no event is ever fired for it again (CB-8).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final, Literal

CANCEL_WAIT: Final = 2.0
"""DIAL-23: a cancelled branch with no final response has ended this long after CANCEL."""
WHISPER_TIMEOUT_WARNING: Final = 82010
"""WSP-8: the warning recorded when a whisper runs past ``--whisper-timeout``."""

FinalStatus = Literal["completed", "busy", "no-answer", "canceled", "failed"]
"""A branch's final CallStatus (CB-3, CB-4)."""
CallStatus = Literal["initiated", "ringing", "in-progress", FinalStatus]
"""The CallStatus a call-progress event carries (CB-3)."""
ProgressEvent = Literal["initiated", "ringing", "answered", "completed"]
"""The call-progress events of a leg (CB-3), each fired at most once."""


class BranchState(enum.StrEnum):
    """Where one branch is; the last five are terminal and spell the final status."""

    PENDING = "pending"  # INVITE sent, no 180/183 yet (a 100 may have arrived)
    RINGING = "ringing"  # 180/183 received
    WHISPERING = "whispering"  # 2xx kept, whisper RCML running (WSP-2)
    ACCEPTED = "accepted"  # the winner, bridged (DIAL-21, DIAL-33)
    CANCELING = "canceling"  # CANCEL sent, final status decided, waiting (rule 2)
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"
    FAILED = "failed"
    COMPLETED = "completed"


TERMINAL: Final = frozenset(
    {
        BranchState.BUSY,
        BranchState.NO_ANSWER,
        BranchState.CANCELED,
        BranchState.FAILED,
        BranchState.COMPLETED,
    }
)
"""States of a branch whose ``completed`` event has been fired."""
LIVE: Final = frozenset({BranchState.PENDING, BranchState.RINGING})
"""Unanswered and undecided: these ring on and can still answer (rule 1)."""


class Signal(enum.Enum):
    """What can happen to one branch (the Fork turns its inputs into these)."""

    TRYING = "100 Trying"
    PROVISIONAL = "180 or 183"
    ANSWER = "2xx to the INVITE"
    FAILURE = "3xx-6xx, Timer B (408) or transport error (503)"
    RING_TIMEOUT = "the Dial's timeout since the INVITE (DIAL-35)"
    CANCEL_TIMEOUT = "2 s since the CANCEL without a final response (DIAL-23)"
    WHISPER_ACCEPT = "the whisper ran out of verbs (WSP-5)"
    WHISPER_DECLINE = "the whisper ran <Hangup> or <Reject> (WSP-6)"
    WHISPER_FAIL = "the whisper request or document failed (WSP-7)"
    WHISPER_TIMEOUT = "the whisper ran past --whisper-timeout (WSP-8)"
    CALLEE_BYE = "the called party hung up (WSP-6, DIAL-44)"
    LOSE = "another branch accepted (DIAL-23)"
    ABANDON = "the caller left before a bridge (DIAL-34)"
    HANG_UP = "dialtone ends the bridge: timeLimit, hangupOnStar, API, caller BYE"


class Rule(enum.Enum):
    """How the Fork handles a row; the module docstring explains each."""

    MARK = "a 100 arrived: CANCEL may be sent from now on (RFC 3261 §9.1)"
    RING = "first 180/183: ringing event (CB-3)"
    KEEP = "2xx kept: answered event, then the whisper or the accept rule (DIAL-20)"
    FAIL = "final response: status per DIAL-25, branch ended"
    END_UNANSWERED = "CANCEL or defer it, status canceled/no-answer (rule 2)"
    ACCEPT = "whisper accepted: the accept rule (DIAL-21)"
    END_WHISPER = "stop the whisper, BYE unless the callee sent it (rule 3)"
    END_BRIDGE = "BYE the winner unless it sent BYE, completed (rule 3)"
    FINISH = "a canceling branch has ended: keep the status (rule 4)"
    REFUSE = "ACK and BYE a 2xx not kept (rule 5)"
    LATE_PROVISIONAL = "send a deferred CANCEL (rule 6)"
    CLOSE = "a late final response: the INVITE is over, a deferred CANCEL is dropped"


_P, _R, _W = BranchState.PENDING, BranchState.RINGING, BranchState.WHISPERING
_UNANSWERED_ROWS: Final = {
    Signal.ANSWER: Rule.KEEP,
    Signal.FAILURE: Rule.FAIL,
    Signal.RING_TIMEOUT: Rule.END_UNANSWERED,
    Signal.LOSE: Rule.END_UNANSWERED,
    Signal.ABANDON: Rule.END_UNANSWERED,
}
_ENDED_ROWS: Final = {
    Signal.TRYING: Rule.LATE_PROVISIONAL,
    Signal.PROVISIONAL: Rule.LATE_PROVISIONAL,
    Signal.ANSWER: Rule.REFUSE,
    Signal.FAILURE: Rule.CLOSE,
}

TRANSITIONS: Final[dict[BranchState, dict[Signal, Rule]]] = {
    _P: {Signal.TRYING: Rule.MARK, Signal.PROVISIONAL: Rule.RING, **_UNANSWERED_ROWS},
    # Only the first 180/183 fires ``ringing``; later ones are absorbed (CB-3).
    _R: dict(_UNANSWERED_ROWS),
    _W: {
        Signal.WHISPER_ACCEPT: Rule.ACCEPT,
        Signal.WHISPER_DECLINE: Rule.END_WHISPER,
        Signal.WHISPER_FAIL: Rule.END_WHISPER,
        Signal.WHISPER_TIMEOUT: Rule.END_WHISPER,
        Signal.CALLEE_BYE: Rule.END_WHISPER,
        Signal.LOSE: Rule.END_WHISPER,
        Signal.ABANDON: Rule.END_WHISPER,
        Signal.ANSWER: Rule.REFUSE,  # a second fork's 2xx (rule 5)
    },
    BranchState.ACCEPTED: {
        Signal.CALLEE_BYE: Rule.END_BRIDGE,
        Signal.HANG_UP: Rule.END_BRIDGE,
        Signal.ANSWER: Rule.REFUSE,
    },
    BranchState.CANCELING: {
        Signal.ANSWER: Rule.REFUSE,  # the 2xx that crossed our CANCEL (DIAL-24)
        Signal.FAILURE: Rule.FINISH,  # 487, or a final that crossed the CANCEL
        Signal.CANCEL_TIMEOUT: Rule.FINISH,
    },
    **{state: dict(_ENDED_ROWS) for state in TERMINAL},
}
"""Every row of the branch machine; a missing row absorbs its input (rule 7)."""


@dataclass(frozen=True, slots=True)
class WhisperEnd:
    """How a whisper ends for one signal (WSP-6..WSP-9)."""

    status: FinalStatus
    stop: bool  # the whisper is still running: stop it
    bye: bool  # dialtone sends BYE (the callee has not)
    warning: int | None = None


WHISPER_ENDS: Final[dict[Signal, WhisperEnd]] = {
    Signal.WHISPER_DECLINE: WhisperEnd("completed", stop=False, bye=True),  # WSP-6
    Signal.WHISPER_FAIL: WhisperEnd("failed", stop=False, bye=True),  # WSP-7
    Signal.WHISPER_TIMEOUT: WhisperEnd(
        "completed", stop=True, bye=True, warning=WHISPER_TIMEOUT_WARNING
    ),  # WSP-8
    Signal.CALLEE_BYE: WhisperEnd("completed", stop=True, bye=False),  # WSP-6
    Signal.LOSE: WhisperEnd("completed", stop=True, bye=True),  # WSP-9, DIAL-23
    Signal.ABANDON: WhisperEnd("completed", stop=True, bye=True),  # WSP-9, DIAL-34
}
UNANSWERED_ENDS: Final[dict[Signal, FinalStatus]] = {
    Signal.RING_TIMEOUT: "no-answer",  # DIAL-35
    Signal.LOSE: "canceled",  # DIAL-23
    Signal.ABANDON: "canceled",  # DIAL-34
}
STATE_OF: Final[dict[FinalStatus, BranchState]] = {
    "completed": BranchState.COMPLETED,
    "busy": BranchState.BUSY,
    "no-answer": BranchState.NO_ANSWER,
    "canceled": BranchState.CANCELED,
    "failed": BranchState.FAILED,
}


def failure_status(code: int) -> FinalStatus:
    """DIAL-25: the status a final non-2xx response gives a branch that was not cancelled.

    408 stands for Timer B and 503 for a transport error.  A 487 here was not caused by a
    CANCEL of ours (those land in ``canceling``, rule 4), so it is one of "any other".
    """
    if code in (486, 600, 603):
        return "busy"
    if code in (408, 480):
        return "no-answer"
    return "failed"


class BridgeEnd(enum.StrEnum):
    """Why dialtone ends a bridge with BYE to the winner (the caller then goes on, DIAL-42)."""

    TIME_LIMIT = "time-limit"  # DIAL-36
    HANGUP_ON_STAR = "hangup-on-star"  # DIAL-37
    API = "api"  # the winner's Call was ended over the REST API (CB-8)


# ---------------------------------------------------------------------------- branches


class CancelState(enum.StrEnum):
    """The CANCEL of a branch's INVITE (DIAL-23, RFC 3261 §9.1)."""

    NONE = "none"  # not needed (or dropped: a final response came first)
    DEFERRED = "deferred"  # decided before any provisional: sent on the first one
    SENT = "sent"


@dataclass(slots=True)
class Branch:
    """One destination of the Dial, in document order (DIAL-10); read it, never write it."""

    index: int
    whisper: bool
    state: BranchState = BranchState.PENDING
    status: FinalStatus | None = None  # decided (``canceling``) or final
    started_at: float | None = None  # INVITE sent; None for a DIAL-13 branch
    answered_at: float | None = None  # 2xx kept
    cancel: CancelState = CancelState.NONE
    cancel_at: float | None = None
    ended_at: float | None = None
    duration_s: int = 0  # CB-6
    sip_code: int | None = None  # CB-5 SipResponseCode
    provisional: bool = False  # any 1xx seen: a CANCEL may be sent (RFC 3261 §9.1)

    @property
    def call_status(self) -> CallStatus:
        """The branch Call's status now (REQ-3); decided statuses count at once (DIAL-23)."""
        if self.status is not None:
            return self.status
        if self.state in (BranchState.WHISPERING, BranchState.ACCEPTED):
            return "in-progress"
        return "ringing" if self.state is BranchState.RINGING else "initiated"


def seconds(span: float) -> int:
    """Whole seconds, rounded half up (spec conventions); never negative."""
    return math.floor(span + 0.5) if span > 0 else 0


# ---------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Cancel:
    """Send CANCEL for the branch's INVITE (a provisional has arrived: RFC 3261 §9.1)."""

    branch: int


@dataclass(frozen=True, slots=True)
class Bye:
    """Send BYE on the branch's kept dialog (DIAL-23, DIAL-36, DIAL-37, DIAL-44, WSP-6)."""

    branch: int


@dataclass(frozen=True, slots=True)
class AckAndBye:
    """ACK the 2xx just reported for the branch, then BYE that dialog (DIAL-24, LEG-6)."""

    branch: int


@dataclass(frozen=True, slots=True)
class StartWhisper:
    """Send the branch's ``sendDigits`` (DIAL-6), then request its whisper URL (WSP-2)."""

    branch: int


@dataclass(frozen=True, slots=True)
class StopWhisper:
    """Stop the branch's whisper RCML and its audio at once (WSP-8, WSP-9)."""

    branch: int


@dataclass(frozen=True, slots=True)
class Bridge:
    """DIAL-33: stop ringback, send the parent 200 OK if ``answer_parent``, then bridge."""

    branch: int
    answer_parent: bool


@dataclass(frozen=True, slots=True)
class Warn:
    """Record a warning Notification for the branch (DIAL-13: 82001-82003; WSP-8: 82010)."""

    branch: int
    code: int


@dataclass(frozen=True, slots=True)
class BranchEvent:
    """Fire a call-progress event of the branch (CB-3); ``sip_code`` only on ``completed``.

    It happened at the ``now`` of the input that returned it (CB-5 ``Timestamp``); the
    CallDuration of a ``completed`` event is in the :class:`BranchEnded` just before it.
    """

    branch: int
    event: ProgressEvent
    status: CallStatus
    sip_code: int | None = None


@dataclass(frozen=True, slots=True)
class BranchEnded:
    """The branch's Call has ended: write its final status, duration and end time (CB-6)."""

    branch: int
    status: FinalStatus
    duration_s: int
    sip_code: int | None


DialStatus = Literal["completed", "canceled", "busy", "failed", "no-answer"]
"""DialCallStatus (DIAL-40)."""


@dataclass(frozen=True, slots=True)
class DialOutcome:
    """The ``Dial…`` parameters of the action request (DIAL-40, DIAL-41).

    ``dial_call_sid_branch`` is the index of the branch whose CallSid is DialCallSid: the
    winner, else the first branch in document order.  ``caller_gone`` tells DIAL-42 from
    DIAL-43 (and the CallStatus of the action request).
    """

    dial_call_status: DialStatus
    dial_call_sid_branch: int
    dial_call_duration: int
    dial_ring_duration: int
    bridged: bool
    caller_gone: bool


@dataclass(frozen=True, slots=True)
class DialEnded:
    """Every branch has fired ``completed``: the Dial is over (DIAL-41, CB-9)."""

    outcome: DialOutcome


Command = (
    Cancel
    | Bye
    | AckAndBye
    | StartWhisper
    | StopWhisper
    | Bridge
    | Warn
    | BranchEvent
    | BranchEnded
    | DialEnded
)
"""What the b2bua carries out, in the order returned."""
