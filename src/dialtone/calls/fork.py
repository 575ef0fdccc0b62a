"""``Fork``: the pure decision core of one `<Dial>` (simultaneous ringing, DIAL-10..DIAL-44).

The Fork takes branch events with the time they happened (``now``, monotonic seconds)
and returns the commands the b2bua carries out, in order; it does no I/O and reads no
clock.  Its per-branch transitions are one table,
:data:`dialtone.calls.fork_table.TRANSITIONS`, whose module docstring holds the branch
rules (1-7); the rules spanning branches live here:

A. **Accept** (DIAL-20, DIAL-21): the first branch to accept (a kept 2xx without whisper,
   or a whisper that ran out of verbs) is the winner.  In the same step every other
   branch is ended as in DIAL-23 (signal ``LOSE``), then :class:`Bridge` is emitted
   (DIAL-33).  "First" is the order of the calls: a 2xx reported after that step is
   ``AckAndBye`` (DIAL-24).
B. **Caller gone** (DIAL-34): before a bridge every branch gets ``ABANDON`` (ringing ones
   end ``canceled``, whispering ones ``completed``) and the Dial is ``canceled``; after the
   bridge the winner gets BYE (DIAL-44).
C. **Bridge end** (DIAL-36, DIAL-37, DIAL-44): the winner ends ``completed``, with BYE
   unless it hung up itself.  ``timeLimit`` is one of the Fork's deadlines.
D. **Dial end** (DIAL-40, DIAL-41, CB-9): once every branch has fired ``completed``, one
   :class:`DialEnded` closes the step's commands.  Afterwards only SIP clean-up (table
   rules 5 and 6) can still come out.

Driving it: call :meth:`Fork.failed_at_start` for each DIAL-13 branch, send the INVITEs
and call :meth:`Fork.start` (then 180 and ringback to the caller, DIAL-30, if any INVITE
went out); feed every response, whisper result, hang-up and timer to its method; after
each call carry out the commands in order and re-arm one timer at
:meth:`Fork.next_deadline`, calling :meth:`Fork.timer` when it fires.  Each 2xx dialog
must be reported once (retransmissions are the dialog layer's).  Timestamps of events
are the ``now`` of the input that returned them.  On :class:`DialEnded` without a bridge
the b2bua stops the ringback; the verb then makes the action request (DIAL-41..43).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dialtone.calls.fork_table import (
    CANCEL_WAIT,
    LIVE,
    STATE_OF,
    TERMINAL,
    TRANSITIONS,
    UNANSWERED_ENDS,
    WHISPER_ENDS,
    AckAndBye,
    Branch,
    BranchEnded,
    BranchEvent,
    BranchState,
    Bridge,
    BridgeEnd,
    Bye,
    Cancel,
    CancelState,
    Command,
    DialEnded,
    DialOutcome,
    DialStatus,
    FinalStatus,
    Rule,
    Signal,
    StartWhisper,
    StopWhisper,
    Warn,
    failure_status,
    seconds,
)

__all__ = [
    "LIVE",
    "AckAndBye",
    "Branch",
    "BranchEnded",
    "BranchEvent",
    "BranchState",
    "Bridge",
    "BridgeEnd",
    "Bye",
    "Cancel",
    "CancelState",
    "Command",
    "DialEnded",
    "DialOutcome",
    "Fork",
    "ForkError",
    "StartWhisper",
    "StopWhisper",
    "Warn",
]


class ForkError(RuntimeError):
    """An input the Dial cannot take in any race: a bug of the caller, not of the network."""


class Fork:
    """One Dial: its branches, its timers, its winner and its outcome.

    ``whispers`` has one entry per branch in document order: whether that noun has a
    whisper ``url`` (DIAL-20).  ``timeout`` is the Dial's ringing limit per branch
    (DIAL-35), ``time_limit`` the bridge limit (DIAL-36, None: the b2bua times it and calls
    :meth:`bridge_ended`), ``whisper_timeout`` is ``--whisper-timeout`` (WSP-8), and
    ``parent_answered`` tells whether the caller was answered before the Dial (DIAL-32).
    Every input returns the commands to carry out, in order; a ``now`` earlier than one
    already seen is taken as that one, so durations never run backwards.
    """

    def __init__(
        self,
        whispers: Sequence[bool],
        *,
        timeout: float = 30.0,
        time_limit: float | None = 14400.0,
        whisper_timeout: float = 60.0,
        parent_answered: bool = False,
    ) -> None:
        if not whispers:
            raise ValueError("a Dial has at least one branch (DIAL-2, DIAL-13)")
        if timeout <= 0 or whisper_timeout <= 0 or (time_limit is not None and time_limit <= 0):
            raise ValueError("timeout, time_limit and whisper_timeout must be positive")
        self.branches = tuple(Branch(i, bool(w)) for i, w in enumerate(whispers))
        self.timeout = float(timeout)
        self.time_limit = None if time_limit is None else float(time_limit)
        self.whisper_timeout = float(whisper_timeout)
        self.parent_answered = parent_answered
        self.caller_connected = True
        self.winner: int | None = None
        self.bridge_end: BridgeEnd | None = None
        self.started_at: float | None = None
        self.bridged_at: float | None = None
        self.outcome: DialOutcome | None = None
        self._now = 0.0
        self._out: list[Command] = []
        self._rules: dict[Rule, Callable[[Branch, Signal, int | None], None]] = {
            Rule.MARK: self._mark,
            Rule.RING: self._ring,
            Rule.KEEP: self._keep,
            Rule.FAIL: self._fail,
            Rule.END_UNANSWERED: self._end_unanswered,
            Rule.ACCEPT: self._accept,
            Rule.END_WHISPER: self._end_whisper,
            Rule.END_BRIDGE: self._end_bridge,
            Rule.FINISH: self._finish,
            Rule.REFUSE: self._refuse,
            Rule.LATE_PROVISIONAL: self._late_provisional,
            Rule.CLOSE: self._close,
        }

    # ------------------------------------------------------------------------ inputs

    def failed_at_start(self, branch: int, code: int) -> list[Command]:
        """DIAL-13: the branch cannot be dialled (82001/82002/82003); before :meth:`start`.

        It ends ``failed`` at once with no SIP message, no ``initiated`` event and no
        SipResponseCode; the warning names ``code``.
        """
        if self.started_at is not None:
            raise ForkError("failed_at_start comes before start (DIAL-13 branches send no INVITE)")
        b = self._branch(branch)
        if b.state is not BranchState.PENDING:
            raise ForkError(f"branch {branch} has already failed")
        b.state, b.status = BranchState.FAILED, "failed"
        return [
            Warn(branch, code),
            BranchEnded(branch, "failed", 0, None),
            BranchEvent(branch, "completed", "failed"),
        ]

    def start(self, now: float) -> list[Command]:
        """All INVITEs were sent at ``now`` (DIAL-11): ``initiated`` for each (CB-3)."""
        if self.started_at is not None:
            raise ForkError("the Dial has already started")
        self._now = now
        self.started_at = now
        for b in self.branches:
            if b.state is BranchState.PENDING:
                b.started_at = now
                self._out.append(BranchEvent(b.index, "initiated", "initiated"))
        return self._done()

    def trying(self, branch: int, now: float) -> list[Command]:
        """A 100 Trying: no event, but a CANCEL may now be sent (RFC 3261 §9.1)."""
        return self._sip(branch, now, Signal.TRYING)

    def provisional(self, branch: int, now: float) -> list[Command]:
        """A 180 or 183: ``ringing`` the first time (CB-3)."""
        return self._sip(branch, now, Signal.PROVISIONAL)

    def answered(self, branch: int, now: float) -> list[Command]:
        """A 2xx (once per dialog): kept and accepted or whispered, else ``AckAndBye``.

        Unless the commands hold ``AckAndBye(branch)``, the 2xx was kept: the b2bua ACKs it
        at once (LEG-6) and then carries out the commands.
        """
        return self._sip(branch, now, Signal.ANSWER)

    def final_failure(self, branch: int, status_code: int, now: float) -> list[Command]:
        """A 3xx-6xx final response; Timer B is reported as 408, a transport error as 503."""
        if not 300 <= status_code <= 699:
            raise ValueError(f"{status_code} is not a final failure response")
        return self._sip(branch, now, Signal.FAILURE, status_code)

    def whisper_done(self, branch: int, accepted: bool, failed: bool, now: float) -> list[Command]:
        """The whisper ended: accepted (WSP-5), declined (WSP-6) or ``failed`` (WSP-7).

        A whisper that failed records its own error Notification (the runner knows the
        code); the Fork sends BYE and ends the branch ``failed``.
        """
        if accepted and failed:
            raise ValueError("a whisper cannot both accept and fail")
        signal = Signal.WHISPER_ACCEPT if accepted else Signal.WHISPER_DECLINE
        return self._input(branch, now, Signal.WHISPER_FAIL if failed else signal)

    def branch_gone(self, branch: int, now: float) -> list[Command]:
        """The called party sent BYE: during its whisper a decline (WSP-6), after the bridge
        the end of the bridge (DIAL-44)."""
        return self._input(branch, now, Signal.CALLEE_BYE)

    def callee_hung_up(self, now: float) -> list[Command]:
        """The winner sent BYE during the bridge (DIAL-44); the caller goes on (DIAL-42)."""
        self._begin(now)
        if self.winner is not None:
            self._signal(self.branches[self.winner], Signal.CALLEE_BYE)
        return self._done()

    def bridge_ended(self, reason: BridgeEnd, now: float) -> list[Command]:
        """dialtone ends the bridge: BYE to the winner (DIAL-36, DIAL-37, API)."""
        self._begin(now)
        if self.winner is not None and self.branches[self.winner].state is BranchState.ACCEPTED:
            self.bridge_end = reason
            self._signal(self.branches[self.winner], Signal.HANG_UP)
        return self._done()

    def cancel_branch(self, branch: int, now: float) -> list[Command]:
        """API-24: end one branch over the REST API; the Dial goes on with the others.

        Ringing, it is cancelled (``canceled``); whispering, declined (BYE, ``completed``);
        bridged, it counts as the callee hanging up (BYE, ``completed``, DIAL-44).
        """
        self._begin(now)
        b = self._branch(branch)
        if b.state is BranchState.ACCEPTED:
            self.bridge_end = BridgeEnd.API
            self._signal(b, Signal.HANG_UP)
        else:
            self._signal(b, Signal.ABANDON)
        return self._done()

    def caller_gone(self, now: float) -> list[Command]:
        """The caller hung up or was ended over the API (rule B, DIAL-34, DIAL-44)."""
        self._begin(now)
        if self.caller_connected:
            self.caller_connected = False
            if self.winner is not None:
                self._signal(self.branches[self.winner], Signal.HANG_UP)
            else:
                for b in self.branches:
                    self._signal(b, Signal.ABANDON)
        return self._done()

    def timer(self, now: float) -> list[Command]:
        """Run every deadline due by ``now``, earliest first (ties in document order)."""
        self._begin(now)
        while True:
            due = [d for d in self._deadlines() if d[0] <= self._now]
            if not due:
                break
            _, index, signal = min(due, key=lambda d: (d[0], d[1]))
            if signal is Signal.HANG_UP:
                self.bridge_end = BridgeEnd.TIME_LIMIT
            self._signal(self.branches[index], signal)
        return self._done()

    def next_deadline(self) -> float | None:
        """When :meth:`timer` must next be called, or None while nothing is timed."""
        return min((d[0] for d in self._deadlines()), default=None)

    @property
    def ended(self) -> bool:
        """Whether :class:`DialEnded` has been emitted."""
        return self.outcome is not None

    # ------------------------------------------------------------------------ plumbing

    def _branch(self, branch: int) -> Branch:
        if not 0 <= branch < len(self.branches):
            raise ForkError(f"no branch {branch}")
        return self.branches[branch]

    def _begin(self, now: float) -> None:
        if self.started_at is None:
            raise ForkError("the Dial has not started")
        self._now = max(self._now, now)

    def _input(
        self, branch: int, now: float, signal: Signal, code: int | None = None
    ) -> list[Command]:
        self._begin(now)
        self._signal(self._branch(branch), signal, code)
        return self._done()

    def _sip(
        self, branch: int, now: float, signal: Signal, code: int | None = None
    ) -> list[Command]:
        if self._branch(branch).started_at is None and self.started_at is not None:
            raise ForkError(f"branch {branch} sent no INVITE (DIAL-13)")
        return self._input(branch, now, signal, code)

    def _signal(self, b: Branch, signal: Signal, code: int | None = None) -> None:
        rule = TRANSITIONS[b.state].get(signal)
        if rule is not None:  # else absorbed (table rule 7)
            self._rules[rule](b, signal, code)

    def _deadlines(self) -> list[tuple[float, int, Signal]]:
        out: list[tuple[float, int, Signal]] = []
        for b in self.branches:
            if b.state in LIVE and b.started_at is not None:
                out.append((b.started_at + self.timeout, b.index, Signal.RING_TIMEOUT))
            elif b.state is BranchState.WHISPERING and b.answered_at is not None:
                deadline = b.answered_at + self.whisper_timeout
                out.append((deadline, b.index, Signal.WHISPER_TIMEOUT))
            elif b.state is BranchState.CANCELING and b.cancel_at is not None:
                out.append((b.cancel_at + CANCEL_WAIT, b.index, Signal.CANCEL_TIMEOUT))
            elif (
                b.state is BranchState.ACCEPTED
                and self.time_limit is not None
                and self.bridged_at is not None
            ):
                out.append((self.bridged_at + self.time_limit, b.index, Signal.HANG_UP))
        return out

    def _done(self) -> list[Command]:
        """Close the step: rule D, then hand the commands over."""
        if self.outcome is None and all(b.state in TERMINAL for b in self.branches):
            self.outcome = self._outcome()
            self._out.append(DialEnded(self.outcome))
        out, self._out = self._out, []
        return out

    def _outcome(self) -> DialOutcome:
        """DIAL-40 and DIAL-41, once every branch has ended."""
        gone = not self.caller_connected
        if self.winner is not None:
            w = self.branches[self.winner]
            assert w.answered_at is not None and w.started_at is not None
            ring = seconds(w.answered_at - w.started_at)
            return DialOutcome("completed", w.index, w.duration_s, ring, True, gone)
        statuses = {b.status for b in self.branches}
        status: DialStatus = "no-answer"
        if gone:
            status = "canceled"
        elif statuses == {"busy"}:
            status = "busy"
        elif statuses == {"failed"}:
            status = "failed"
        assert self.started_at is not None
        return DialOutcome(status, 0, 0, seconds(self._now - self.started_at), False, gone)

    # ------------------------------------------------------------------------ rules

    def _mark(self, b: Branch, signal: Signal, code: int | None) -> None:
        b.provisional = True

    def _ring(self, b: Branch, signal: Signal, code: int | None) -> None:
        b.provisional = True
        b.state = BranchState.RINGING
        self._out.append(BranchEvent(b.index, "ringing", "ringing"))

    def _keep(self, b: Branch, signal: Signal, code: int | None) -> None:
        b.answered_at = self._now
        self._out.append(BranchEvent(b.index, "answered", "in-progress"))
        if b.whisper:  # WSP-2; the other branches ring on (DIAL-22)
            b.state = BranchState.WHISPERING
            self._out.append(StartWhisper(b.index))
        else:
            self._accept(b, signal, code)

    def _accept(self, b: Branch, signal: Signal, code: int | None) -> None:
        """Rule A: ``b`` wins; the others end (DIAL-23) before the bridge (Ex. D-1)."""
        b.state = BranchState.ACCEPTED
        self.winner, self.bridged_at = b.index, self._now
        for other in self.branches:
            if other is not b:
                self._signal(other, Signal.LOSE)
        self._out.append(Bridge(b.index, answer_parent=not self.parent_answered))
        self.parent_answered = True

    def _fail(self, b: Branch, signal: Signal, code: int | None) -> None:
        assert code is not None
        b.sip_code = code
        self._end(b, failure_status(code))

    def _end_unanswered(self, b: Branch, signal: Signal, code: int | None) -> None:
        status = UNANSWERED_ENDS[signal]
        if b.provisional:
            self._out.append(Cancel(b.index))
            b.cancel, b.cancel_at = CancelState.SENT, self._now
            b.state, b.status = BranchState.CANCELING, status
        else:  # DIAL-23: marked at once, CANCEL deferred to the first provisional
            b.cancel = CancelState.DEFERRED
            self._end(b, status)

    def _end_whisper(self, b: Branch, signal: Signal, code: int | None) -> None:
        how = WHISPER_ENDS[signal]
        if how.stop:
            self._out.append(StopWhisper(b.index))
        if how.bye:
            self._out.append(Bye(b.index))
        if how.warning is not None:
            self._out.append(Warn(b.index, how.warning))
        b.sip_code = 200
        self._end(b, how.status)

    def _end_bridge(self, b: Branch, signal: Signal, code: int | None) -> None:
        if signal is Signal.HANG_UP:
            self._out.append(Bye(b.index))
        b.sip_code = 200
        self._end(b, "completed")

    def _finish(self, b: Branch, signal: Signal, code: int | None) -> None:
        assert b.status is not None
        b.sip_code = code  # None after the 2 s rule: no final response exists
        self._end(b, b.status)

    def _refuse(self, b: Branch, signal: Signal, code: int | None) -> None:
        self._out.append(AckAndBye(b.index))
        if b.state is BranchState.CANCELING:  # ended by that BYE (DIAL-23), status kept
            assert b.status is not None
            b.sip_code = 200
            self._end(b, b.status)

    def _late_provisional(self, b: Branch, signal: Signal, code: int | None) -> None:
        if b.cancel is CancelState.DEFERRED:
            self._out.append(Cancel(b.index))
            b.cancel, b.cancel_at = CancelState.SENT, self._now

    def _close(self, b: Branch, signal: Signal, code: int | None) -> None:
        if b.cancel is CancelState.DEFERRED:
            b.cancel = CancelState.NONE

    def _end(self, b: Branch, status: FinalStatus) -> None:
        """The branch has ended: its CDR, then its one ``completed`` event (CB-8)."""
        b.state, b.status, b.ended_at = STATE_OF[status], status, self._now
        if b.answered_at is not None:
            b.duration_s = seconds(self._now - b.answered_at)
        self._out.append(BranchEnded(b.index, status, b.duration_s, b.sip_code))
        self._out.append(BranchEvent(b.index, "completed", status, b.sip_code))
