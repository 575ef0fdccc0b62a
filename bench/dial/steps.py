"""One RFC 7502-style load step of the Dial benchmark: offer a call rate for a fixed time.

A step starts the SIPp callees (on the registered/static ports), runs one
bounded SIPp caller at `rate` calls/s for `seconds`, waits for the callees to
finish their calls, stops them, and judges: the step is clean when the caller
exits 0 with every call successful, no callee call failed, retransmissions
stay under a small share of the calls, the achieved rate is close to the
offered one, and the server is still alive.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common.ports import free_ports
from bench.common.procs import ManagedProcess
from bench.common.procstat import Memory, cpu_seconds, system_cpu, tree_cpu, tree_memory
from bench.dial import sipp
from bench.dial.targets import CalleeSpec, Server


@dataclass(frozen=True)
class Criteria:
    """What makes a step clean."""

    max_retrans_pct: float = 1.0  # retransmissions (caller + callees) per call, in %
    min_achieved_pct: float = 95.0  # of the offered rate


@dataclass(frozen=True)
class StepSpec:
    """How one step runs (shared by every step of a target)."""

    hold_ms: int
    answer_delay_ms: int
    side_cpus: str | None  # where SIPp runs
    criteria: Criteria
    settle_timeout: float = 60.0  # wait this long at most for the server to go idle after a step


@dataclass
class StepResult:
    """Figures and verdict of one step."""

    label: str
    rate: int
    calls: int
    exit_code: int | None = None
    timed_out: bool = False
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    unexpected: int = 0  # out-of-call + dead-call messages at the caller
    callee_successful: int = 0
    callee_failed: int = 0
    callee_retransmissions: int = 0
    callee_unexpected: int = 0
    duration_s: float = 0.0
    creation_s: float = 0.0
    achieved_rate: float = 0.0
    server_cpu_s: float = 0.0
    server_cpu_pct: float = 0.0  # steady state: while calls are being started (see _steady)
    cpu_ms_per_call: float = 0.0
    sipp_cpu_pct: float = 0.0  # caller + callees, % of one core
    helper_cpu_pct: float = 0.0  # the voice app (dialtone only)
    other_cpu_pct: float = 0.0
    answer_p50: str = "n/a"  # caller's INVITE -> 200, SIPp response-time bucket
    answer_p99: str = "n/a"
    memory: Memory | None = None
    peak_rss_kib: int = 0
    peak_pss_kib: int = 0
    leftovers: dict[str, int] = field(default_factory=dict)
    settle_s: float = 0.0  # after the last call: seconds until the server's CPU fell below 5 %
    settled: bool = True
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    log_files: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Plain-data form for results/latest.json."""
        return asdict(self)


def judge(result: StepResult, criteria: Criteria) -> None:
    """Fill `passed` and `reasons` from the step's figures."""
    reasons: list[str] = []
    if result.timed_out:
        reasons.append("SIPp caller overran its time bound")
    elif result.exit_code != 0:
        reasons.append(f"SIPp caller exit code {result.exit_code}")
    if result.failed:
        reasons.append(f"{result.failed} failed calls")
    if result.successful < result.calls:
        reasons.append(f"{result.calls - result.successful} calls not completed")
    if result.callee_failed:
        reasons.append(f"{result.callee_failed} failed calls at the callees")
    retrans = result.retransmissions + result.callee_retransmissions
    if result.calls and 100.0 * retrans / result.calls > criteria.max_retrans_pct:
        reasons.append(f"retransmission storm ({retrans} retransmissions)")
    if not result.settled:
        reasons.append(f"server still busy {result.settle_s:.0f} s after the last call (backlog)")
    if result.achieved_rate < result.rate * criteria.min_achieved_pct / 100.0:
        reasons.append(f"achieved {result.achieved_rate:.0f}/s < {criteria.min_achieved_pct:g}%")
    result.reasons = reasons + result.reasons
    result.passed = not result.reasons


def _first_errors(paths: list[Path], limit: int = 6) -> list[str]:
    seen: list[str] = []
    for path in paths:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            text = line.strip()
            if text and text not in seen and not text.startswith(("-----", "The following")):
                seen.append(f"{path.stem}: {text[:240]}")
            if len(seen) >= limit:
                return seen
    return seen


def _steady(samples: list[tuple[float, float]], start: float, seconds: float, hold: float) -> float:
    """Server CPU in % of one core while the load is steady.

    From one hold time after the first call (calls are then ending as fast as
    they start) to the end of call creation; over the whole step when it is
    too short for that. The per-call figure uses the whole step instead.
    """
    first, last = start + min(hold + 0.5, seconds / 3), start + seconds
    window = [(t, cpu) for t, cpu in samples if first <= t <= last]
    if len(window) < 3:
        window = samples
    (t0, c0), (t1, c1) = window[0], window[-1]
    return 100.0 * (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


def _settle(pid: int, timeout: float, idle_pct: float = 5.0) -> tuple[float, bool]:
    """Wait until the server uses < `idle_pct` of a core over 1 s; (seconds waited, settled).

    A server that defers work (dialtone writes its call records behind the
    calls) keeps a core busy after the last call: that CPU belongs to the step,
    and a backlog that never drains means the rate is not sustained.
    """
    start = time.monotonic()
    last = tree_cpu(pid).seconds
    while time.monotonic() - start < timeout:
        time.sleep(1.0)
        now = tree_cpu(pid).seconds
        if 100.0 * (now - last) < idle_pct:
            return time.monotonic() - start, True
        last = now
    return time.monotonic() - start, False


def _drain(callees: list[sipp.Callee], procs: list[ManagedProcess], timeout: float) -> None:
    """Wait until every callee reports no open call (its 1 s statistics row), bounded."""
    deadline = time.monotonic() + timeout
    time.sleep(1.2)  # at least one fresh statistics row after the caller's last BYE
    while time.monotonic() < deadline:
        counts = [sipp.open_calls(c) for c, p in zip(callees, procs, strict=True) if p.alive()]
        if all(count == 0 for count in counts):
            return
        time.sleep(0.5)


def run_step(
    server: Server,
    specs: tuple[CalleeSpec, ...],
    spec: StepSpec,
    *,
    rate: int,
    seconds: float,
    label: str,
    out: Path,
    trace_logs: bool = False,
) -> StepResult:
    """Run one step against `server` and return the judged result."""
    calls = max(1, int(rate * seconds))
    result = StepResult(label=label, rate=rate, calls=calls)
    timeout = int(seconds * 3 + spec.hold_ms / 1000 + 30)
    server.before_step()
    callees = [
        sipp.Callee(
            name=f"{server.name}-{label}-{item.login}",
            port=item.port,
            media_port=item.media_port,
            answer=item.answer,
            out_dir=out,
            answer_delay_ms=spec.answer_delay_ms,
            timeout_s=timeout + 30,
            trace_logs=trace_logs,
        )
        for item in specs
    ]
    local_port, media_port = free_ports(2)
    caller = sipp.Caller(
        name=f"{server.name}-{label}-caller",
        target_port=server.sip_port,
        service=server.service,
        local_port=local_port,
        media_port=media_port,
        rate=rate,
        calls=calls,
        hold_ms=spec.hold_ms,
        out_dir=out,
        timeout_s=timeout,
        trace_logs=trace_logs,
    )
    callee_procs = sipp.start_callees(callees, spec.side_cpus)
    try:
        cpu_before = tree_cpu(server.proc.pid)
        helpers_before = sum(tree_cpu(h.pid).seconds for h in server.helpers)
        machine_before = system_cpu()
        wall_before = time.monotonic()
        proc = sipp.start_caller(caller, spec.side_cpus)
        result.command = proc.argv
        sipp_cpu: dict[int, float] = {}
        samples: list[tuple[float, float]] = [(wall_before, cpu_before.seconds)]
        peak_rss = peak_pss = 0
        deadline = wall_before + timeout + 15
        next_memory = 0.0
        # Poll rather than block: SIPp's CPU time must be read before it is reaped.
        while proc.alive() and time.monotonic() < deadline:
            for each in (proc, *callee_procs):
                if each.alive():
                    sipp_cpu[each.pid] = cpu_seconds(each.pid) or sipp_cpu.get(each.pid, 0.0)
            now = time.monotonic()
            samples.append((now, tree_cpu(server.proc.pid).seconds))
            if now >= next_memory:
                memory = tree_memory(server.proc.pid)
                peak_rss = max(peak_rss, memory.rss_sum_kib)
                peak_pss = max(peak_pss, memory.pss_sum_kib)
                next_memory = now + 2.0
            time.sleep(0.5)
        result.exit_code, result.timed_out = proc.wait(
            timeout=max(0.1, deadline - time.monotonic())
        )
        _drain(callees, callee_procs, timeout=10.0)
        result.settle_s, result.settled = _settle(server.proc.pid, spec.settle_timeout)
        for each in callee_procs:
            if each.alive():
                sipp_cpu[each.pid] = cpu_seconds(each.pid) or sipp_cpu.get(each.pid, 0.0)
        wall = time.monotonic() - wall_before
        cpu_after = tree_cpu(server.proc.pid)
        helpers_after = sum(tree_cpu(h.pid).seconds for h in server.helpers)
        machine_after = system_cpu()
        result.memory = tree_memory(server.proc.pid)
        result.peak_rss_kib = max(peak_rss, result.memory.rss_sum_kib)
        result.peak_pss_kib = max(peak_pss, result.memory.pss_sum_kib)
    finally:
        sipp.stop_callees(callee_procs)
    result.errors = _first_errors([caller.error_path] + [c.error_path for c in callees])
    if trace_logs:
        result.log_files = {"caller": str(caller.log_path)} | {
            item.login: str(c.log_path) for item, c in zip(specs, callees, strict=True)
        }
    if not server.proc.alive():
        result.reasons.append("server exited")
    stats = sipp.stats_of(caller.stat_path)
    if stats is None:
        result.reasons.append("no SIPp caller statistics")
        judge(result, spec.criteria)
        return result
    result.successful = stats.successful
    result.failed = stats.failed
    result.retransmissions = stats.retransmissions
    result.unexpected = stats.out_of_call + stats.dead_call
    result.duration_s = stats.duration_s
    result.creation_s = stats.creation_s
    result.achieved_rate = stats.achieved_rate
    result.answer_p50 = stats.rtd_percentile(0.50)
    result.answer_p99 = stats.rtd_percentile(0.99)
    for callee in callees:
        got = sipp.stats_of(callee.stat_path)
        if got is None:
            result.reasons.append(f"no statistics from callee {callee.name}")
            continue
        result.callee_successful += got.successful
        result.callee_failed += got.failed
        result.callee_retransmissions += got.retransmissions
        result.callee_unexpected += got.out_of_call + got.dead_call
    result.server_cpu_s = cpu_after.seconds - cpu_before.seconds
    busy = stats.duration_s if stats.duration_s > 0 else wall
    result.server_cpu_pct = _steady(samples, wall_before, seconds, spec.hold_ms / 1000)
    total_sipp = sum(sipp_cpu.values())
    result.sipp_cpu_pct = 100.0 * total_sipp / busy
    helpers = helpers_after - helpers_before
    result.helper_cpu_pct = 100.0 * helpers / busy
    others = (
        machine_after.busy
        - machine_before.busy
        - (cpu_after.stat_seconds - cpu_before.stat_seconds)
        - total_sipp
        - helpers
    )
    result.other_cpu_pct = max(0.0, 100.0 * others / wall)
    if stats.successful:
        result.cpu_ms_per_call = 1e3 * result.server_cpu_s / stats.successful
    result.leftovers = {k: v for k, v in server.after_step(10.0).items() if v}
    judge(result, spec.criteria)
    return result
