"""Latencies of the IVR latency step: INVITE → 200 with and without the app's own time.

Method: in the latency step the caller runs with `-trace_logs` and stamps
(`gettimeofday`) its INVITE leaving, the 200 arriving (with the RTP port of
the SDP answer) and the server's BYE arriving. The party that decides the
answer stamps its own service time on the same clock (CLOCK_REALTIME, one
machine):

* dialtone: the voice app (bench/common/voiceapp.py) logs when a request
  line arrived and when its answer was written, with the request's `From`
  (+1999<call number>, the caller's From user): webhook service time;
* Kamailio: its SIPp UAS logs when the INVITE arrived and when its 200
  left, with the From header: UAS service time.

Per call, dialtone's (or Kamailio's) own answer delay = caller INVITE → 200
minus that service time: everything the server did (SIP parsing, routing,
the HTTP request and its parsing, RCML, media set-up for dialtone; relaying
both ways for Kamailio) plus SIPp's scheduling, which is why Kamailio's
figure is the floor of the method. dialtone's is also split at the webhook:
INVITE → request at the app, and answer written → 200 at the caller.
"First RTP" is 200 at the caller → the first packet at the sink of the stream
from the answer's RTP port (dialtone sends comfort silence from the answer
on), "first speech" → its first packet that is not silence: when the prompt
starts (dialtone only: the UAS plays nothing).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.common.sipp import log_lines, log_time
from bench.common.stats import percentiles

_UAC = re.compile(r"^uac (invite|answered|bye) (\d+) ([\d.]+) ([\d.]+)(?: (\d+))?")
_UAS = re.compile(r"^uas (invite|answer) ([\d.]+) ([\d.]+) (\S+) .*sip:\+1999(\d+)@")
_HOOK = re.compile(r"^hook \+1999(\d+) \S+ ([\d.]+) ([\d.]+)$")


@dataclass
class CallTimes:
    """Timestamps (epoch seconds) of one call."""

    invite: float | None = None
    answered: float | None = None
    answer_port: int | None = None
    bye: float | None = None
    app_in: float | None = None  # the webhook request / the INVITE arrived at the app or UAS
    app_out: float | None = None  # its answer was written / the UAS's 200 left
    first_rtp: float | None = None
    first_speech: float | None = None


def _caller(path: Path | None, calls: dict[int, CallTimes]) -> None:
    for line in log_lines(path):
        match = _UAC.match(line)
        if not match:
            continue
        call, when = calls[int(match[2])], log_time(match[3], match[4])
        if match[1] == "invite":
            call.invite = when
        elif match[1] == "answered":
            call.answered = when
            call.answer_port = int(match[5]) if match[5] else None
        else:
            call.bye = when


def _app(hooks: Path | None, uas: Path | None, calls: dict[int, CallTimes]) -> None:
    for line in log_lines(hooks):
        match = _HOOK.match(line)
        if match and int(match[1]) in calls:
            call = calls[int(match[1])]
            if call.app_in is None:  # the first request of the call: the VoiceUrl
                call.app_in, call.app_out = float(match[2]), float(match[3])
    for line in log_lines(uas):
        match = _UAS.match(line)
        if match and int(match[5]) in calls:
            call, when = calls[int(match[5])], log_time(match[2], match[3])
            if match[1] == "invite":
                call.app_in = when
            else:
                call.app_out = when


def _rtp(path: Path | None, calls: dict[int, CallTimes]) -> None:
    """Each call's stream: from its answer's port, first packet nearest to the 200."""
    if path is None:
        return
    try:
        streams = json.loads(path.read_text())["streams"]
    except (OSError, ValueError, KeyError):
        return
    by_port: dict[int, list[tuple[float, float | None]]] = defaultdict(list)
    for row in streams:
        by_port[int(row[0])].append((float(row[3]), row[7] if len(row) > 7 else None))
    for call in calls.values():
        if call.answered is None or call.answer_port not in by_port:
            continue
        answered = call.answered
        call.first_rtp, call.first_speech = min(
            by_port[call.answer_port], key=lambda stream: abs(stream[0] - answered)
        )


@dataclass
class Latency:
    """Distributions (ms) measured in the latency step."""

    rate: int
    calls: int
    paired: int  # calls with the app's (or UAS's) timestamps
    answer: dict[str, float] | None  # caller INVITE → 200 (everything)
    app: dict[str, float] | None  # the app's (UAS's) own service time
    own: dict[str, float] | None  # INVITE → 200 minus the app's service time
    before_app: dict[str, float] | None  # INVITE → request at the app / INVITE at the UAS
    after_app: dict[str, float] | None  # app answered / UAS's 200 sent → 200 at the caller
    first_rtp: dict[str, float] | None  # 200 at the caller → first RTP packet
    first_speech: dict[str, float] | None  # 200 at the caller → first packet of the prompt
    talk: dict[str, float] | None  # 200 → the server's BYE at the caller


def measure(
    rate: int,
    caller_log: Path | None,
    hooks: Path | None = None,
    uas_log: Path | None = None,
    rtp: Path | None = None,
) -> Latency:
    """Latency distributions of one latency step."""
    calls: dict[int, CallTimes] = defaultdict(CallTimes)
    _caller(caller_log, calls)
    calls = {n: c for n, c in calls.items() if c.invite is not None}
    _app(hooks, uas_log, calls)
    _rtp(rtp, calls)
    answer, app, own, before, after, to_rtp, to_speech, talk = [], [], [], [], [], [], [], []
    paired = 0
    for call in calls.values():
        assert call.invite is not None
        if call.answered is None:
            continue
        answer.append(call.answered - call.invite)
        if call.bye is not None:
            talk.append(call.bye - call.answered)
        if call.first_rtp is not None:
            to_rtp.append(call.first_rtp - call.answered)
        if call.first_speech is not None:
            to_speech.append(call.first_speech - call.answered)
        if call.app_in is None or call.app_out is None:
            continue
        paired += 1
        service = call.app_out - call.app_in
        app.append(service)
        own.append(call.answered - call.invite - service)
        before.append(call.app_in - call.invite)
        after.append(call.answered - call.app_out)
    return Latency(
        rate=rate,
        calls=len(calls),
        paired=paired,
        answer=percentiles(answer),
        app=percentiles(app),
        own=percentiles(own),
        before_app=percentiles(before),
        after_app=percentiles(after),
        first_rtp=percentiles(to_rtp),
        first_speech=percentiles(to_speech),
        talk=percentiles(talk),
    )
