"""The Dial decision core (DIAL-10..DIAL-44, WSP-5..WSP-9, CB-3/CB-8/CB-9) as pure steps.

Every spec example is an exact sequence of inputs with times and the commands they
return; every race of the spec is a pair of orders; a hypothesis test drives random
interleavings and checks the invariants of CB-8, CB-9 and DIAL-21.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dialtone.calls.fork import (
    AckAndBye,
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
    Fork,
    ForkError,
    StartWhisper,
    StopWhisper,
    Warn,
)
from dialtone.calls.fork_table import DialStatus, FinalStatus

A, B, C, D = 0, 1, 2, 3


def initiated(b: int) -> BranchEvent:
    return BranchEvent(b, "initiated", "initiated")


def ringing(b: int) -> BranchEvent:
    return BranchEvent(b, "ringing", "ringing")


def in_progress(b: int) -> BranchEvent:
    return BranchEvent(b, "answered", "in-progress")


def completed(b: int, status: FinalStatus, duration: int, code: int | None) -> list[Command]:
    """CB-8: the branch's CDR, then its one ``completed`` event."""
    return [BranchEnded(b, status, duration, code), BranchEvent(b, "completed", status, code)]


def dial_ended(
    status: DialStatus, sid: int, duration: int, ring: int, bridged: bool, gone: bool = False
) -> DialEnded:
    return DialEnded(DialOutcome(status, sid, duration, ring, bridged, gone))


def ringing_fork(n: int = 2, whisper: tuple[int, ...] = (), **kwargs: object) -> Fork:
    """A started Dial (``timeout=20`` as in the dial.md RCML) whose branches all ring."""
    fork = Fork([i in whisper for i in range(n)], timeout=20, **kwargs)  # type: ignore[arg-type]
    assert fork.start(0) == [initiated(i) for i in range(n)]
    for i in range(n):
        assert fork.provisional(i, 0.1) == [ringing(i)]
    return fork


# ---------------------------------------------------------------------------- dial.md


def test_d1_bob_answers_at_4_and_hangs_up_at_64() -> None:
    fork = ringing_fork()
    assert fork.next_deadline() == 20
    assert fork.answered(B, 4) == [in_progress(B), Cancel(A), Bridge(B, answer_parent=True)]
    assert fork.branches[A].state is BranchState.CANCELING
    assert fork.branches[A].call_status == "canceled"  # DIAL-23: marked at once
    assert fork.next_deadline() == 6  # A's 2 s CANCEL rule; the bridge has no timeLimit here
    assert fork.final_failure(A, 487, 4.05) == completed(A, "canceled", 0, 487)
    assert fork.callee_hung_up(64) == [
        *completed(B, "completed", 60, 200),
        dial_ended("completed", B, 60, 4, True),
    ]
    assert fork.ended and fork.next_deadline() is None


def test_d2_nobody_answers_timeout_487_is_no_answer() -> None:
    fork = ringing_fork()
    assert fork.timer(19.99) == []
    assert fork.timer(20) == [Cancel(A), Cancel(B)]
    assert fork.final_failure(A, 487, 20.05) == completed(A, "no-answer", 0, 487)
    assert fork.final_failure(B, 487, 20.06) == [
        *completed(B, "no-answer", 0, 487),
        dial_ended("no-answer", A, 0, 20, False),
    ]


def test_d3_all_busy() -> None:
    fork = Fork([False, False], timeout=20)
    fork.start(0)
    assert fork.provisional(A, 1) == [ringing(A)]
    assert fork.final_failure(A, 486, 2) == completed(A, "busy", 0, 486)
    assert fork.final_failure(B, 486, 3) == [
        *completed(B, "busy", 0, 486),
        dial_ended("busy", A, 0, 3, False),
    ]


def test_d4_caller_hangs_up_while_both_ring() -> None:
    fork = ringing_fork()
    assert fork.caller_gone(5) == [Cancel(A), Cancel(B)]
    assert fork.final_failure(A, 487, 5.05) == completed(A, "canceled", 0, 487)
    assert fork.final_failure(B, 487, 5.05) == [
        *completed(B, "canceled", 0, 487),
        dial_ended("canceled", A, 0, 5, False, gone=True),
    ]


def test_d5_second_device_answers_with_an_offline_client_and_a_number() -> None:
    n, a1, a2, b = range(4)
    fork = Fork([False] * 4)
    assert fork.failed_at_start(b, 82002) == [Warn(b, 82002), *completed(b, "failed", 0, None)]
    assert fork.start(0) == [initiated(n), initiated(a1), initiated(a2)]  # none for CAb
    for i in (n, a1, a2):
        fork.provisional(i, 0.5)
    assert fork.answered(a2, 6) == [in_progress(a2), Cancel(n), Cancel(a1), Bridge(a2, True)]
    assert fork.final_failure(n, 487, 6.1) == completed(n, "canceled", 0, 487)
    assert fork.final_failure(a1, 487, 6.1) == completed(a1, "canceled", 0, 487)
    assert fork.callee_hung_up(36) == [
        *completed(a2, "completed", 30, 200),
        dial_ended("completed", a2, 30, 6, True),
    ]


def test_d6_callee_hangs_up_first_and_the_caller_goes_on() -> None:
    fork = Fork([False])
    fork.start(0)
    fork.provisional(A, 1)
    assert fork.answered(A, 3) == [in_progress(A), Bridge(A, True)]
    out = fork.callee_hung_up(20)
    assert out == [*completed(A, "completed", 17, 200), dial_ended("completed", A, 17, 3, True)]
    assert fork.caller_connected  # DIAL-42: the next verb (<Say>Goodbye</Say>) runs


def test_all_failed() -> None:
    fork = Fork([False, False, False])
    fork.failed_at_start(C, 82003)
    fork.start(0)
    assert fork.final_failure(A, 404, 1) == completed(A, "failed", 0, 404)
    assert fork.final_failure(B, 503, 2)[-1] == dial_ended("failed", A, 0, 2, False)


def test_only_dial13_branches_end_the_dial_at_start() -> None:
    fork = Fork([False, False])
    fork.failed_at_start(A, 82001)
    fork.failed_at_start(B, 82002)
    assert fork.start(7) == [dial_ended("failed", A, 0, 0, False)]


def test_busy_and_failed_together_is_no_answer() -> None:
    fork = Fork([False, False])
    fork.start(0)
    fork.final_failure(A, 486, 1)
    assert fork.final_failure(B, 404, 2)[-1] == dial_ended("no-answer", A, 0, 2, False)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (486, "busy"),
        (600, "busy"),
        (603, "busy"),
        (480, "no-answer"),
        (408, "no-answer"),  # Timer B
        (404, "failed"),
        (302, "failed"),  # redirects are not followed
        (407, "failed"),  # a second challenge (LEG-5)
        (487, "failed"),  # not after a CANCEL of ours
        (503, "failed"),  # transport error
    ],
)
def test_dial25_final_responses(code: int, status: FinalStatus) -> None:
    fork = Fork([False])
    fork.start(0)
    assert fork.final_failure(A, code, 1)[:2] == completed(A, status, 0, code)


# ---------------------------------------------------------------------------- whisper.md


def test_w1_alice_declines_bob_accepts_caller_hangs_up() -> None:
    fork = Fork([True, True])
    fork.start(0)
    fork.provisional(A, 0.2)
    fork.provisional(B, 0.2)
    assert fork.answered(A, 3) == [in_progress(A), StartWhisper(A)]
    assert fork.answered(B, 5) == [in_progress(B), StartWhisper(B)]
    assert fork.whisper_done(A, accepted=False, failed=False, now=7) == [
        Bye(A),
        *completed(A, "completed", 4, 200),
    ]
    assert fork.whisper_done(B, accepted=True, failed=False, now=9) == [Bridge(B, True)]
    assert fork.caller_gone(39) == [
        Bye(B),
        *completed(B, "completed", 34, 200),
        dial_ended("completed", B, 34, 5, True, gone=True),
    ]


def test_w2_silence_on_the_only_branch() -> None:
    fork = Fork([True])
    fork.start(0)
    fork.provisional(A, 1)
    fork.answered(A, 2)
    assert fork.whisper_done(A, False, False, 9) == [
        Bye(A),
        *completed(A, "completed", 7, 200),
        dial_ended("no-answer", A, 0, 9, False),
    ]


def test_w3_informing_whisper_accepts_when_it_ends() -> None:
    fork = Fork([True])
    fork.start(0)
    fork.answered(A, 3)  # no 180 first: no ringing event (CB-3)
    assert fork.whisper_done(A, True, False, 6) == [Bridge(A, True)]
    assert fork.callee_hung_up(16)[-1] == dial_ended("completed", A, 13, 3, True)


def test_w4_failed_whisper_ends_failed_and_the_others_ring_on() -> None:
    fork = ringing_fork(2, whisper=(A,))
    fork.answered(A, 2)
    assert fork.whisper_done(A, False, True, 2.5) == [Bye(A), *completed(A, "failed", 1, 200)]
    assert fork.branches[B].state is BranchState.RINGING


def test_wsp8_whisper_timeout_declines_with_82010_and_ignores_dial_timeout() -> None:
    fork = Fork([True, False], timeout=20, whisper_timeout=60)
    fork.start(0)
    fork.answered(A, 10)
    # B has no provisional: marked at once, its CANCEL deferred; A's whisper is unaffected
    assert fork.timer(20) == completed(B, "no-answer", 0, None)
    assert fork.branches[B].cancel is CancelState.DEFERRED
    assert fork.next_deadline() == 70
    assert fork.timer(70) == [
        StopWhisper(A),
        Bye(A),
        Warn(A, 82010),
        *completed(A, "completed", 60, 200),
        dial_ended("no-answer", A, 0, 70, False),
    ]


# ---------------------------------------------------------------------------- races


def test_two_200s_back_to_back_one_bridge_one_ack_and_bye() -> None:
    fork = ringing_fork()
    assert fork.answered(A, 4) == [in_progress(A), Cancel(B), Bridge(A, True)]
    assert fork.answered(B, 4) == [AckAndBye(B), *completed(B, "canceled", 0, 200)]
    assert fork.winner == A


def test_caller_cancels_then_200_arrives() -> None:
    fork = ringing_fork(1)
    assert fork.caller_gone(5) == [Cancel(A)]
    assert fork.answered(A, 5) == [
        AckAndBye(A),
        *completed(A, "canceled", 0, 200),
        dial_ended("canceled", A, 0, 5, False, gone=True),
    ]


def test_200_then_caller_cancels_is_a_bridge_that_ended() -> None:
    fork = ringing_fork(1)
    assert fork.answered(A, 5) == [in_progress(A), Bridge(A, True)]
    assert fork.caller_gone(5) == [
        Bye(A),
        *completed(A, "completed", 0, 200),
        dial_ended("completed", A, 0, 5, True, gone=True),
    ]


def test_whisper_accept_then_plain_answer_on_another_branch() -> None:
    fork = ringing_fork(whisper=(A,))
    fork.answered(A, 3)
    assert fork.whisper_done(A, True, False, 8) == [Cancel(B), Bridge(A, True)]
    assert fork.answered(B, 8) == [AckAndBye(B), *completed(B, "canceled", 0, 200)]


def test_plain_answer_then_whisper_accept_on_another_branch() -> None:
    fork = ringing_fork(whisper=(A,))
    fork.answered(A, 3)
    assert fork.answered(B, 8) == [
        in_progress(B),
        StopWhisper(A),
        Bye(A),
        *completed(A, "completed", 5, 200),
        Bridge(B, True),
    ]
    assert fork.whisper_done(A, True, False, 8) == []  # lost the race: absorbed
    assert fork.winner == B


def test_timeout_then_200() -> None:
    fork = ringing_fork(1)
    assert fork.timer(20) == [Cancel(A)]
    assert fork.answered(A, 20) == [
        AckAndBye(A),
        *completed(A, "no-answer", 0, 200),
        dial_ended("no-answer", A, 0, 20, False),
    ]


def test_200_then_timeout() -> None:
    fork = ringing_fork(1)
    assert fork.answered(A, 20) == [in_progress(A), Bridge(A, True)]
    assert fork.timer(20) == []
    assert fork.next_deadline() == 20 + 14400  # only the default timeLimit (DIAL-36)


def test_cancel_before_any_provisional_is_deferred() -> None:
    fork = Fork([False, False, False])
    fork.start(0)
    fork.provisional(A, 1)
    fork.trying(C, 1)  # a 100 is enough for CANCEL (RFC 3261 §9.1), no event
    assert fork.answered(A, 2) == [
        in_progress(A),
        *completed(B, "canceled", 0, None),  # marked at once, nothing sent
        Cancel(C),
        Bridge(A, True),
    ]
    assert fork.branches[B].cancel is CancelState.DEFERRED
    assert fork.provisional(B, 2.5) == [Cancel(B)]  # now it may be sent; no ringing event
    assert fork.provisional(B, 2.6) == []
    assert fork.final_failure(B, 487, 2.7) == []  # B has ended already


def test_deferred_cancel_then_200_or_final() -> None:
    fork = Fork([False, False, False])
    fork.start(0)
    fork.answered(A, 2)
    assert fork.answered(B, 2.2) == [AckAndBye(B)]  # DIAL-24, no event
    assert fork.final_failure(C, 486, 2.3) == []
    assert fork.branches[C].cancel is CancelState.NONE
    assert fork.provisional(C, 2.4) == []


def test_cancel_without_final_response_ends_two_seconds_later() -> None:
    fork = ringing_fork()
    fork.answered(A, 4)
    assert fork.timer(5.99) == []
    assert fork.timer(6) == completed(B, "canceled", 0, None)
    assert fork.final_failure(B, 487, 7) == []  # absorbed
    assert fork.answered(B, 7) == [AckAndBye(B)]  # still ACK+BYE a late 2xx (LEG-6)


def test_final_that_crosses_the_cancel_keeps_the_decided_status() -> None:
    fork = ringing_fork(1)
    fork.caller_gone(3)
    assert fork.final_failure(A, 486, 3.1)[:2] == completed(A, "canceled", 0, 486)


def test_caller_gone_while_one_whispers_and_one_rings() -> None:
    fork = ringing_fork(whisper=(A,))
    fork.answered(A, 3)
    assert fork.caller_gone(5) == [
        StopWhisper(A),
        Bye(A),
        *completed(A, "completed", 2, 200),
        Cancel(B),
    ]
    assert fork.final_failure(B, 487, 5.1) == [
        *completed(B, "canceled", 0, 487),
        dial_ended("canceled", A, 0, 5, False, gone=True),
    ]


def test_callee_hangs_up_during_its_whisper() -> None:
    fork = Fork([True, False])
    fork.start(0)
    fork.provisional(B, 1)
    fork.answered(A, 2)
    assert fork.branch_gone(A, 4) == [StopWhisper(A), *completed(A, "completed", 2, 200)]
    assert fork.branches[B].state is BranchState.RINGING  # WSP-6: the others go on


@pytest.mark.parametrize("reason", [BridgeEnd.HANGUP_ON_STAR, BridgeEnd.API])
def test_bridge_ended_by_dialtone(reason: BridgeEnd) -> None:
    fork = ringing_fork(1, parent_answered=True)
    assert fork.answered(A, 2) == [in_progress(A), Bridge(A, answer_parent=False)]
    assert fork.bridge_ended(reason, 12) == [
        Bye(A),
        *completed(A, "completed", 10, 200),
        dial_ended("completed", A, 10, 2, True),
    ]
    assert fork.bridge_end is reason and fork.caller_connected


def test_time_limit_ends_the_bridge() -> None:
    fork = ringing_fork(1, time_limit=30)
    fork.answered(A, 2)
    assert fork.next_deadline() == 32
    assert fork.timer(32)[:1] == [Bye(A)]
    assert fork.bridge_end is BridgeEnd.TIME_LIMIT


def test_late_timer_runs_deadlines_in_order() -> None:
    fork = Fork([True, False], timeout=20, whisper_timeout=5)
    fork.start(0)
    fork.provisional(B, 1)
    fork.answered(A, 1)
    # A late call runs the whisper deadline (6), then B's timeout (20); what is done now
    # counts from now: A's CallDuration, and B's 2 s CANCEL rule.
    assert fork.timer(100) == [
        StopWhisper(A),
        Bye(A),
        Warn(A, 82010),
        *completed(A, "completed", 99, 200),
        Cancel(B),
    ]
    assert fork.next_deadline() == 102
    assert fork.timer(102)[-1] == dial_ended("no-answer", A, 0, 102, False)


def test_inputs_the_b2bua_must_not_send() -> None:
    fork = Fork([False, False])
    with pytest.raises(ForkError):
        fork.provisional(A, 0)  # before start
    fork.failed_at_start(B, 82001)
    with pytest.raises(ForkError):
        fork.failed_at_start(B, 82001)
    fork.start(0)
    with pytest.raises(ForkError):
        fork.start(1)
    with pytest.raises(ForkError):
        fork.failed_at_start(A, 82001)
    with pytest.raises(ForkError):
        fork.answered(B, 1)  # DIAL-13 branches have no SIP
    with pytest.raises(ForkError):
        fork.answered(5, 1)
    with pytest.raises(ValueError, match="final"):
        fork.final_failure(A, 200, 1)
    with pytest.raises(ValueError, match="both"):
        fork.whisper_done(A, True, True, 1)
    with pytest.raises(ValueError, match="at least one"):
        Fork([])


# ---------------------------------------------------------------------------- properties

_SIP = frozenset({"trying", "provisional", "answered", "final"})
_CODES = (404, 408, 480, 486, 487, 503, 603)
_KINDS = (
    *("trying", "provisional", "provisional", "answered", "answered", "final"),
    *("accept", "accept", "decline", "whisper_fail", "branch_gone"),
    *("caller_gone", "callee_hung_up", "bridge_ended", "timer", "timer"),
)
_ops = st.tuples(
    st.sampled_from(_KINDS),
    st.integers(0, 9),
    st.sampled_from([0.0, 0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 10.0]),
    st.sampled_from(_CODES),
)


def _step(fork: Fork, op: tuple[str, int, float, int], now: float) -> list[Command]:
    kind, b, _, code = op
    calls: dict[str, Callable[[], list[Command]]] = {
        "trying": lambda: fork.trying(b, now),
        "provisional": lambda: fork.provisional(b, now),
        "answered": lambda: fork.answered(b, now),
        "final": lambda: fork.final_failure(b, code, now),
        "accept": lambda: fork.whisper_done(b, True, False, now),
        "decline": lambda: fork.whisper_done(b, False, False, now),
        "whisper_fail": lambda: fork.whisper_done(b, False, True, now),
        "branch_gone": lambda: fork.branch_gone(b, now),
        "caller_gone": lambda: fork.caller_gone(now),
        "callee_hung_up": lambda: fork.callee_hung_up(now),
        "bridge_ended": lambda: fork.bridge_ended(BridgeEnd.HANGUP_ON_STAR, now),
        "timer": lambda: fork.timer(now),
    }
    return calls[kind]()


_CLEANUP = (Cancel, AckAndBye)
"""The only commands allowed for a branch after its ``completed`` (table rules 5 and 6)."""


def _drive(
    fork: Fork, dial13: set[int], ops: list[tuple[str, int, float, int]]
) -> tuple[list[list[Command]], list[set[int]]]:
    """Run ``ops`` (skipping SIP for DIAL-13 branches), then every timer, then the caller
    leaves a bridge that has no timeLimit.  Returns each step's commands and, per step,
    the branches that had a 1xx by then (CANCEL is allowed only for those)."""
    n = len(fork.branches)
    steps = [fork.failed_at_start(b, 82002) for b in sorted(dial13)]
    steps.append(fork.start(0))
    now, had_1xx = 0.0, set[int]()
    seen: list[set[int]] = [set() for _ in steps]
    for op in ops:
        op = (op[0], op[1] % n, op[2], op[3])
        if op[1] in dial13 and op[0] in _SIP:
            continue
        now += op[2]
        if op[0] in ("trying", "provisional"):
            had_1xx.add(op[1])
        steps.append(_step(fork, op, now))
        seen.append(set(had_1xx))
        if op[0] == "timer":
            deadline = fork.next_deadline()
            assert deadline is None or deadline > now
    for finish in (False, True):
        if finish and not fork.ended:
            steps.append(fork.caller_gone(now))
            seen.append(set(had_1xx))
        while (deadline := fork.next_deadline()) is not None:
            now = max(now, deadline)
            steps.append(fork.timer(now))
            seen.append(set(had_1xx))
    return steps, seen


def _check_branch(
    fork: Fork, b: int, log: list[tuple[int, Command]], seen: list[set[int]], dial13: set[int]
) -> None:
    mine = [(i, c) for i, c in log if getattr(c, "branch", None) == b]
    events = [c.event for _, c in mine if isinstance(c, BranchEvent)]
    assert events.count("completed") == 1, "CB-8: exactly one completed"
    order = ["initiated", "ringing", "answered", "completed"]
    assert events == [e for e in order if e in events], "CB-3: in order, each at most once"
    assert ("initiated" in events) == (b not in dial13), "DIAL-13: no initiated"
    done = [isinstance(c, BranchEvent) and c.event == "completed" for _, c in mine].index(True)
    assert isinstance(mine[done - 1][1], BranchEnded)
    assert all(isinstance(c, _CLEANUP) for _, c in mine[done + 1 :]), "nothing after completed"
    cancels = [i for i, c in mine if isinstance(c, Cancel)]
    assert len(cancels) <= 1 and all(b in seen[i] for i in cancels), "RFC 3261 §9.1"
    byes = [c for _, c in mine if isinstance(c, Bye)]
    assert len(byes) <= 1 and (not byes or "answered" in events)
    if any(isinstance(c, Bridge) for _, c in mine):
        assert "answered" in events and fork.branches[b].status == "completed"


@settings(max_examples=400, deadline=None)
@given(
    whispers=st.lists(st.booleans(), min_size=1, max_size=10),
    unreachable=st.sets(st.integers(0, 9), max_size=3),
    ops=st.lists(_ops, max_size=60),
    timeout=st.sampled_from([1, 5, 30]),
    time_limit=st.sampled_from([None, 4.0, 14400.0]),
)
def test_random_interleavings_keep_the_invariants(
    whispers: list[bool],
    unreachable: set[int],
    ops: list[tuple[str, int, float, int]],
    timeout: int,
    time_limit: float | None,
) -> None:
    fork = Fork(whispers, timeout=timeout, time_limit=time_limit, whisper_timeout=8)
    dial13 = {b for b in unreachable if b < len(whispers)}
    steps, seen = _drive(fork, dial13, ops)
    log = [(i, c) for i, step in enumerate(steps) for c in step]

    for step in steps:
        assert all(not isinstance(c, DialEnded) for c in step[:-1]), "DialEnded closes a step"
    ended = [k for k, (_, c) in enumerate(log) if isinstance(c, DialEnded)]
    assert len(ended) == 1, "DIAL-41: DialEnded exactly once"
    assert all(isinstance(c, _CLEANUP) for _, c in log[ended[0] + 1 :]), "CB-9: it is last"
    bridges = [c for _, c in log if isinstance(c, Bridge)]
    assert len(bridges) <= 1, "DIAL-21: at most one winner"
    for b in range(len(whispers)):
        _check_branch(fork, b, log, seen, dial13)

    outcome = fork.outcome
    assert outcome is not None and outcome.bridged == bool(bridges)
    event(f"DialCallStatus={outcome.dial_call_status}")
    for kind in {type(c).__name__ for _, c in log} & {"AckAndBye", "StartWhisper", "Warn"}:
        event(kind)
    statuses = {br.status for br in fork.branches}
    if outcome.bridged:
        assert outcome.dial_call_status == "completed"
        assert outcome.dial_call_sid_branch == fork.winner == bridges[0].branch
    elif outcome.caller_gone:
        assert outcome.dial_call_status == "canceled"
    elif statuses in ({"busy"}, {"failed"}):
        assert outcome.dial_call_status == statuses.pop()
    else:
        assert outcome.dial_call_status == "no-answer"
