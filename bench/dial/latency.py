"""Latencies of the latency step, from the SIPp `<log>` timestamps of caller and callees.

Method: in the latency step every SIPp runs with `-trace_logs`; the scenarios
take `gettimeofday` (the same CLOCK_REALTIME on one machine) when the caller
sends its INVITE and receives the first 180/183 and the 200, and when a callee
receives an INVITE, sends its 200, or receives a CANCEL. A branch is paired
with its caller call by the From user `+1999<call number>` the caller puts in
its INVITE (a proxy passes From through; dialtone copies the caller's From
user as the branch callerId, DIAL-10). When the From user is not found, the
branch is paired by time: with the latest caller INVITE sent before the
branch INVITE arrived (unambiguous at the low rates of the latency step as
long as the delay is below the interval between calls; the report says
which pairing was used). Every figure includes SIPp's own scheduling (a few
ms at most): the Kamailio figures are the floor of this method.

Figures, per call:

* post-dial delay (PDD): caller INVITE sent → first branch INVITE received;
  dialtone's own PDD is that minus the voice app's service time for the call's
  VoiceUrl request (bench/common/voiceapp.py logs, on the same clock, when the
  request line arrived and when its answer was written, with the request's
  `From`): what the issue calls "webhook latency excluded" (the HTTP exchange
  itself, both ends' socket work, stays in: it is dialtone's);
* caller 180: caller INVITE sent → first 180/183 received by the caller, and
  → first 180/183 with a body (SDP: dialtone's DIAL-30 180 with ringback; a
  dialtone inbound call may send an SDP-less 180 before it runs the app);
* answer relay: the winner's 200 sent → the caller's 200 received;
* fork only: CANCEL delay: the winner's 200 sent → each loser's CANCEL
  received (all losers, and the last loser of each call).
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.common.sipp import log_lines, log_time
from bench.common.stats import percentiles

_UAC = re.compile(r"^uac (invite|ringing|answered) (\d+) ([\d.]+) ([\d.]+)(?: (\d+))?")
_UAS = re.compile(r"^uas (invite|answer|cancel) ([\d.]+) ([\d.]+) (\S+)(.*)$")
_FROM_USER = re.compile(r"sip:\+1999(\d+)@")
_HOOK = re.compile(r"^hook \+1999(\d+) \S+ ([\d.]+) ([\d.]+)$")


@dataclass
class CallTimes:
    """Timestamps (epoch seconds) of one caller call and its branches."""

    invite: float | None = None
    ringing: float | None = None
    ringing_sdp: float | None = None  # first provisional with a body (dialtone: DIAL-30's 180)
    answered: float | None = None
    branch_invites: list[float] = field(default_factory=list)
    winner_answer: float | None = None
    cancels: list[float] = field(default_factory=list)
    webhook: float | None = None  # the voice app's service time for the call's first request


def collect(caller_log: Path, callee_logs: list[Path]) -> tuple[dict[int, CallTimes], str]:
    """Per caller call number, its timestamps; plus the pairing method used."""
    calls: dict[int, CallTimes] = defaultdict(CallTimes)
    for line in log_lines(caller_log):
        match = _UAC.match(line)
        if not match:
            continue
        event, number, when = match[1], int(match[2]), log_time(match[3], match[4])
        call = calls[number]
        if event == "invite":
            call.invite = when
        elif event == "ringing":
            if call.ringing is None:
                call.ringing = when
            if call.ringing_sdp is None and int(match[5] or 0) > 0:
                call.ringing_sdp = when
        elif event == "answered":
            call.answered = when
    by_time = sorted((c.invite, n) for n, c in calls.items() if c.invite is not None)
    starts = [t for t, _ in by_time]
    # Branch Call-ID (per callee log) -> caller call number.
    owner: dict[tuple[int, str], int] = {}
    keyed = timed = 0
    events: list[tuple[int, str, float, str]] = []
    for index, path in enumerate(callee_logs):
        for line in log_lines(path):
            match = _UAS.match(line)
            if match:
                events.append((index, match[1], log_time(match[2], match[3]), match[4] + match[5]))
    for index, event, when, rest in events:
        if event != "invite":
            continue
        call_id = rest.split(" ", 1)[0]
        user = _FROM_USER.search(rest)
        if user and int(user[1]) in calls:
            number = int(user[1])
            keyed += 1
        else:
            position = bisect.bisect_right(starts, when) - 1
            if position < 0:
                continue
            number = by_time[position][1]
            timed += 1
        owner[(index, call_id)] = number
        calls[number].branch_invites.append(when)
    for index, event, when, rest in events:
        number_or_none = owner.get((index, rest.split(" ", 1)[0]))
        if number_or_none is None or event == "invite":
            continue
        call = calls[number_or_none]
        if event == "answer":
            call.winner_answer = when
        else:
            call.cancels.append(when)
    if timed == 0:
        method = "by From user"
    elif keyed == 0:
        method = "by time (the branch INVITEs did not carry the caller's From user)"
    else:
        method = f"by From user ({keyed}) and by time ({timed})"
    return dict(calls), method


@dataclass
class Latency:
    """Distributions (ms) measured in the latency step."""

    rate: int
    calls: int
    pairing: str
    pdd: dict[str, float] | None
    pdd_own: dict[str, float] | None  # minus the webhook's own service time (dialtone)
    ringing: dict[str, float] | None
    ringing_sdp: dict[str, float] | None
    answer_relay: dict[str, float] | None
    cancel_each: dict[str, float] | None
    cancel_last: dict[str, float] | None
    branches_per_call: float
    cancels_per_call: float


def _webhooks(hooks: Path | None, calls: dict[int, CallTimes]) -> None:
    for line in log_lines(hooks):
        match = _HOOK.match(line)
        if match and int(match[1]) in calls:
            call = calls[int(match[1])]
            if call.webhook is None:  # the first request of the call: the VoiceUrl
                call.webhook = float(match[3]) - float(match[2])


def measure(
    rate: int, caller_log: Path, callee_logs: list[Path], hooks: Path | None = None
) -> Latency:
    """Latency distributions of one latency step."""
    calls, pairing = collect(caller_log, callee_logs)
    _webhooks(hooks, calls)
    pdd, pdd_own, ringing, ringing_sdp, relay, each, last = [], [], [], [], [], [], []
    branches = cancels = 0
    for call in calls.values():
        if call.invite is None:
            continue
        branches += len(call.branch_invites)
        cancels += len(call.cancels)
        if call.branch_invites:
            pdd.append(min(call.branch_invites) - call.invite)
            if call.webhook is not None:
                pdd_own.append(pdd[-1] - call.webhook)
        if call.ringing is not None:
            ringing.append(call.ringing - call.invite)
        if call.ringing_sdp is not None:
            ringing_sdp.append(call.ringing_sdp - call.invite)
        if call.winner_answer is not None:
            if call.answered is not None:
                relay.append(call.answered - call.winner_answer)
            delays = [t - call.winner_answer for t in call.cancels]
            each += delays
            if delays:
                last.append(max(delays))
    complete = sum(1 for c in calls.values() if c.invite is not None)
    return Latency(
        rate=rate,
        calls=complete,
        pairing=pairing,
        pdd=percentiles(pdd),
        pdd_own=percentiles(pdd_own),
        ringing=percentiles(ringing),
        ringing_sdp=percentiles(ringing_sdp),
        answer_relay=percentiles(relay),
        cancel_each=percentiles(each),
        cancel_last=percentiles(last),
        branches_per_call=branches / complete if complete else 0.0,
        cancels_per_call=cancels / complete if complete else 0.0,
    )
