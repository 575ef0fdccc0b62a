"""One RFC 7502-style step: offer `POST /Calls` at a rate for a fixed time, judge the result.

A step is clean when every request got `201`, the achieved request rate is close to the
offered one, SIPp (the callee) saw every call through (INVITE → 200 → ACK → BYE → 200, exit
0, few retransmissions), every created Call ended `completed` with a duration of at least
one second and SIP response 200, and the server is back to zero live calls and media ports
soon after the last call ended.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.api_calls.device import UasStep, port_bound
from bench.api_calls.load import offer
from bench.common import sipp as sipp_stats
from bench.common.dialtone import Account
from bench.common.procstat import Memory, cpu_seconds, system_cpu, tree_cpu, tree_memory

DRAIN_S = 30.0  # after SIPp is done, the server must be idle within this bound
LIVE = ("queued", "ringing", "in-progress")


@dataclass(frozen=True)
class Criteria:
    """What makes a step clean."""

    min_achieved_pct: float = 95.0  # of the offered request rate
    max_retrans_pct: float = 1.0  # SIPp retransmissions, of the calls


@dataclass(frozen=True)
class Target:
    """The server under test and the callee's fixed parts."""

    http_port: int
    server_pid: int
    account: Account
    login: str
    device_port: int
    media_port: int
    twiml: str
    caller: str = "+15550001111"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/2010-04-01/Accounts/{self.account.sid}"

    def rest(self) -> httpx.Client:
        return httpx.Client(auth=(self.account.sid, self.account.token), timeout=30)


@dataclass
class StepResult:
    """Figures and verdict of one step."""

    rate: int
    calls: int
    hold_ms: int
    created: int = 0
    api_failures: int = 0
    achieved_rate: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    max_late_ms: float = 0.0
    sipp_exit: int | None = None
    sipp_timed_out: bool = False
    sipp_successful: int = 0
    sipp_failed: int = 0
    retransmissions: int = 0
    completed: int = 0
    call_statuses: dict[str, int] = field(default_factory=dict)
    drain_s: float = math.nan
    rows_settle_s: float = 0.0  # after the drain, until every Call row showed its end
    window_s: float = 0.0
    server_cpu_s: float = 0.0
    server_cpu_pct: float = 0.0
    cpu_ms_per_call: float = 0.0
    harness_cpu_pct: float = 0.0
    sipp_cpu_pct: float = 0.0
    other_cpu_pct: float = 0.0
    memory: Memory | None = None
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    label: str = ""

    def as_json(self) -> dict[str, Any]:
        """Plain data for results/latest.json (NaN as None)."""
        data = asdict(self)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}


def judge(result: StepResult, criteria: Criteria) -> None:
    """Fill `passed` and `reasons`."""
    reasons: list[str] = []
    if result.api_failures:
        reasons.append(f"{result.api_failures} POST /Calls without 201")
    if result.achieved_rate < result.rate * criteria.min_achieved_pct / 100.0:
        reasons.append(f"achieved {result.achieved_rate:.0f}/s < {criteria.min_achieved_pct:g}%")
    if result.sipp_timed_out:
        reasons.append("SIPp overran its time bound")
    elif result.sipp_exit != 0:
        reasons.append(f"SIPp exit code {result.sipp_exit}")
    if result.sipp_failed:
        reasons.append(f"{result.sipp_failed} calls failed at the callee")
    if result.sipp_successful < result.created:
        reasons.append(f"callee completed {result.sipp_successful}/{result.created} calls")
    if result.calls and 100.0 * result.retransmissions / result.calls > criteria.max_retrans_pct:
        reasons.append(f"{result.retransmissions} SIP retransmissions")
    if result.completed < result.created:
        other = {k: v for k, v in result.call_statuses.items() if k != "completed-ok"}
        reasons.append(f"{result.created - result.completed} Calls not completed as due: {other}")
    if math.isnan(result.drain_s):
        reasons.append(f"live calls or media ports left {DRAIN_S:g} s after the step")
    result.reasons = reasons
    result.passed = not reasons


def _wait_idle(target: Target, client: httpx.Client, bound: float) -> float:
    """Seconds until stats show no call and no media port (NaN when not within `bound`)."""
    start = time.monotonic()
    while time.monotonic() - start < bound:
        try:
            stats = client.get(f"http://127.0.0.1:{target.http_port}/dialtone/stats.json").json()
        except (httpx.HTTPError, ValueError):
            stats = {}
        if stats.get("calls") == 0 and stats.get("media_ports") == 0:
            return time.monotonic() - start
        time.sleep(0.1)
    return math.nan


def _call_outcomes(
    target: Target, client: httpx.Client, sids: list[str], bound: float = DRAIN_S
) -> tuple[Counter[str], float]:
    """How the created Calls ended, once their rows show it (the server writes Call rows
    behind the calls, so a row may still say ``in-progress`` for a moment after the call
    is gone): polled until no row is live or ``bound`` seconds have passed."""
    start = time.monotonic()
    while True:
        outcomes = _outcomes_now(target, client, sids)
        live = sum(n for k, n in outcomes.items() if k.split("/")[0] in LIVE)
        if not live or time.monotonic() > start + bound:
            return outcomes, time.monotonic() - start
        time.sleep(0.5)


def _outcomes_now(target: Target, client: httpx.Client, sids: list[str]) -> Counter[str]:
    """How the created Calls ended: `completed-ok` (completed, ≥ 1 s, 200) or their status."""
    wanted = set(sids)
    outcomes: Counter[str] = Counter()
    url: str | None = f"{target.api}/Calls.json?To=client:{target.login}&PageSize=1000"
    while url and wanted:
        response = client.get(url)
        response.raise_for_status()
        body = response.json()
        for call in body["calls"]:
            if call["sid"] not in wanted:
                continue
            wanted.discard(call["sid"])
            ok = (
                call["status"] == "completed"
                and call["duration"] is not None
                and int(call["duration"]) >= 1
                and call.get("sip_response_code") == 200
            )
            outcomes["completed-ok" if ok else f"{call['status']}/{call['duration']}"] += 1
        nxt = body.get("next_page_uri")
        url = f"http://127.0.0.1:{target.http_port}{nxt}" if nxt else None
    if wanted:
        outcomes["not listed"] += len(wanted)
    return outcomes


def run_step(
    target: Target,
    *,
    rate: int,
    seconds: float,
    hold_ms: int,
    in_flight: int,
    out_dir: Path,
    sipp_cpus: str | None,
    criteria: Criteria,
    label: str,
) -> StepResult:
    """One step at `rate` calls/s for `seconds`; the server's CPU is sampled around it."""
    calls = max(1, int(rate * seconds))
    result = StepResult(rate=rate, calls=calls, hold_ms=hold_ms, label=label)
    uas = UasStep(
        port=target.device_port,
        media_port=target.media_port,
        calls=calls,
        hold_ms=hold_ms,
        out_dir=out_dir,
        name=label,
        timeout_s=int(seconds + hold_ms / 1000 + 60),
    )
    proc = uas.start(sipp_cpus)
    try:
        end = time.monotonic() + 5
        while not port_bound(target.device_port) and time.monotonic() < end:
            time.sleep(0.02)
        cpu_before = tree_cpu(target.server_pid)
        machine_before = system_cpu()
        harness_before = time.process_time()
        wall_before = time.monotonic()
        form = {"To": f"client:{target.login}", "From": target.caller, "Twiml": target.twiml}
        load = asyncio.run(
            offer(
                url=f"{target.api}/Calls.json",
                auth=(target.account.sid, target.account.token),
                form=form,
                rate=rate,
                calls=calls,
                in_flight=in_flight,
            )
        )
        result.created = len(load.created)
        result.api_failures = len(load.failures)
        result.achieved_rate = load.achieved_rate
        result.p50_ms = load.percentile_ms(0.50)
        result.p99_ms = load.percentile_ms(0.99)
        result.max_ms = load.percentile_ms(1.0)
        result.max_late_ms = load.max_late_ms
        result.errors = sorted({a.error or str(a.status) for a in load.failures})[:5]
        # SIPp ends by itself after `calls` calls (each held hold_ms); poll its CPU meanwhile.
        sipp_cpu = 0.0
        deadline = time.monotonic() + hold_ms / 1000 + 45
        if result.created < calls:  # it will never see them all: give it a short grace
            deadline = time.monotonic() + hold_ms / 1000 + 10
        while proc.alive() and time.monotonic() < deadline:
            sipp_cpu = cpu_seconds(proc.pid) or sipp_cpu
            time.sleep(0.2)
        if proc.alive():
            proc.stop(grace=2.0)
            result.sipp_timed_out = result.created == calls
        result.sipp_exit = proc.popen.returncode
        with target.rest() as client:
            result.drain_s = _wait_idle(target, client, DRAIN_S)
            # The CPU window ends once every Call row shows its end: the server writes
            # rows behind the calls, and that work is part of a call's cost (the few list
            # requests that poll for it are counted too).
            outcomes, result.rows_settle_s = _call_outcomes(target, client, load.created)
            wall = time.monotonic() - wall_before
            cpu_after = tree_cpu(target.server_pid)
            machine_after = system_cpu()
            harness = time.process_time() - harness_before
        result.call_statuses = dict(outcomes)
        result.completed = outcomes.get("completed-ok", 0)
    finally:
        proc.stop(grace=2.0)
    result.window_s = wall
    result.server_cpu_s = cpu_after.seconds - cpu_before.seconds
    result.server_cpu_pct = 100.0 * result.server_cpu_s / wall
    result.cpu_ms_per_call = 1e3 * result.server_cpu_s / max(1, result.created)
    result.harness_cpu_pct = 100.0 * harness / wall
    result.sipp_cpu_pct = 100.0 * sipp_cpu / wall
    others = (
        machine_after.busy
        - machine_before.busy
        - (cpu_after.stat_seconds - cpu_before.stat_seconds)
        - sipp_cpu
        - harness
    )
    result.other_cpu_pct = max(0.0, 100.0 * others / wall)
    result.memory = tree_memory(target.server_pid)
    try:
        stats = sipp_stats.read_stats(uas.stat_path)
        result.sipp_successful = stats.successful
        result.sipp_failed = stats.failed
        result.retransmissions = stats.retransmissions
    except (OSError, ValueError, KeyError) as exc:
        result.errors.append(f"no SIPp statistics: {exc}")
    result.errors += uas.errors()
    judge(result, criteria)
    return result
