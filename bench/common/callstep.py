"""One RFC 7502-style load step of a call benchmark: offer a call rate for a fixed time.

`run_calls` starts the step's SIPp servers (callees, UAS), runs one bounded
SIPp caller, samples the server's CPU and memory while it runs, waits for the
servers to close their calls and for the server under test to go idle, stops
the SIPp servers and fills a `StepResult`. A benchmark builds the SIPp command
lines, adds its own checks to `result.reasons`, then calls `judge`: the step
is clean when the caller exits 0 with every call successful, no call failed at
a SIPp server, retransmissions stay under a small share of the calls, the
achieved rate is close to the offered one, the server is alive and idle again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.common import sipp
from bench.common.procs import ManagedProcess
from bench.common.procstat import Memory, cpu_seconds, system_cpu, tree_cpu, tree_memory
from bench.common.server import Server
from bench.common.sipp import SippRun


@dataclass(frozen=True)
class Criteria:
    """What makes a step clean."""

    max_retrans_pct: float = 1.0  # retransmissions (caller + SIPp servers) per call, in %
    min_achieved_pct: float = 95.0  # of the offered rate


@dataclass(frozen=True)
class StepSpec:
    """How every step of a target runs."""

    call_seconds: float  # how long one call lasts once answered (hold, or the prompt)
    side_cpus: str | None  # where SIPp and the helpers run
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
    sipp_cpu_pct: float = 0.0  # caller + SIPp servers, % of one core
    helper_cpu_pct: float = 0.0  # the voice app and other helpers
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

    def describe(self) -> str:
        """One progress line: counts, rates, CPU, memory."""
        left = f", left open {self.leftovers}" if self.leftovers else ""
        return (
            f"{self.successful}/{self.calls} ok, {self.failed} failed, "
            f"callees {self.callee_successful} ok/{self.callee_failed} failed, "
            f"retrans {self.retransmissions}+{self.callee_retransmissions}, "
            f"achieved {self.achieved_rate:.0f}/s, server CPU {self.server_cpu_pct:.0f}% "
            f"({self.cpu_ms_per_call:.2f} ms/call), SIPp CPU {self.sipp_cpu_pct:.0f}%, "
            f"RSS peak {self.peak_rss_kib / 1024:.0f} MiB, idle {self.settle_s:.0f} s after{left}"
        )


def judge(result: StepResult, criteria: Criteria) -> None:
    """Fill `passed` and `reasons` from the step's figures (reasons already given are kept)."""
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


def caller_timeout(seconds: float, call_seconds: float) -> int:
    """The caller's `-timeout` (s) for a step of `seconds`: three times the step, plus margin."""
    return int(seconds * 3 + call_seconds + 30)


def _steady(samples: list[tuple[float, float]], start: float, seconds: float, hold: float) -> float:
    """Server CPU in % of one core while the load is steady.

    From one call length after the first call (calls are then ending as fast as
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


def _drain(runs: Sequence[SippRun], procs: Sequence[ManagedProcess], timeout: float) -> None:
    """Wait until every SIPp server reports no open call (its 1 s statistics row), bounded."""
    if not procs:
        return
    deadline = time.monotonic() + timeout
    time.sleep(1.2)  # at least one fresh statistics row after the caller's last message
    while time.monotonic() < deadline:
        counts = [sipp.open_calls(r.files) for r, p in zip(runs, procs, strict=True) if p.alive()]
        if all(count == 0 for count in counts):
            return
        time.sleep(0.5)


def run_calls(
    result: StepResult,
    server: Server,
    caller: SippRun,
    callees: Mapping[str, SippRun],
    spec: StepSpec,
    *,
    seconds: float,
    timeout: int,
    helpers: Sequence[ManagedProcess] = (),
) -> None:
    """Run one step against `server` and fill `result` (not judged: see `judge`).

    `callees` are SIPp servers started before the caller and stopped after it,
    keyed by the name their `<log>` file is listed under in `result.log_files`
    (the caller's is "caller"). `helpers` are per-step processes the caller
    started (their CPU counts with the server's helpers); they must outlive
    this call.
    """
    server.before_step()
    callee_procs = sipp.start_servers(
        [(run.files, run.argv) for run in callees.values()], spec.side_cpus
    )
    side = [*server.helpers, *helpers]
    try:
        cpu_before = tree_cpu(server.proc.pid)
        helpers_before = sum(tree_cpu(h.pid).seconds for h in side)
        machine_before = system_cpu()
        wall_before = time.monotonic()
        proc = sipp.start(caller.files, caller.argv, spec.side_cpus)
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
        _drain(list(callees.values()), callee_procs, timeout=10.0)
        result.settle_s, result.settled = _settle(server.proc.pid, spec.settle_timeout)
        for each in callee_procs:
            if each.alive():
                sipp_cpu[each.pid] = cpu_seconds(each.pid) or sipp_cpu.get(each.pid, 0.0)
        wall = time.monotonic() - wall_before
        cpu_after = tree_cpu(server.proc.pid)
        helpers_after = sum(tree_cpu(h.pid).seconds for h in side)
        machine_after = system_cpu()
        result.memory = tree_memory(server.proc.pid)
        result.peak_rss_kib = max(peak_rss, result.memory.rss_sum_kib)
        result.peak_pss_kib = max(peak_pss, result.memory.pss_sum_kib)
    finally:
        sipp.stop_gracefully(callee_procs)
    result.errors = sipp.error_lines(
        [caller.files.error_path] + [run.files.error_path for run in callees.values()]
    )
    if "-trace_logs" in caller.argv:
        result.log_files = {"caller": str(caller.files.log_path)} | {
            key: str(run.files.log_path) for key, run in callees.items()
        }
    if not server.proc.alive():
        result.reasons.append("server exited")
    stats = sipp.stats_of(caller.files.stat_path)
    if stats is None:
        result.reasons.append("no SIPp caller statistics")
        return
    result.successful = stats.successful
    result.failed = stats.failed
    result.retransmissions = stats.retransmissions
    result.unexpected = stats.out_of_call + stats.dead_call
    result.duration_s = stats.duration_s
    result.creation_s = stats.creation_s
    result.achieved_rate = stats.achieved_rate
    result.answer_p50 = stats.rtd_percentile(0.50)
    result.answer_p99 = stats.rtd_percentile(0.99)
    for run in callees.values():
        got = sipp.stats_of(run.files.stat_path)
        if got is None:
            result.reasons.append(f"no statistics from callee {run.files.name}")
            continue
        result.callee_successful += got.successful
        result.callee_failed += got.failed
        result.callee_retransmissions += got.retransmissions
        result.callee_unexpected += got.out_of_call + got.dead_call
    result.server_cpu_s = cpu_after.seconds - cpu_before.seconds
    busy = stats.duration_s if stats.duration_s > 0 else wall
    result.server_cpu_pct = _steady(samples, wall_before, seconds, spec.call_seconds)
    total_sipp = sum(sipp_cpu.values())
    result.sipp_cpu_pct = 100.0 * total_sipp / busy
    helpers_cpu = helpers_after - helpers_before
    result.helper_cpu_pct = 100.0 * helpers_cpu / busy
    others = (
        machine_after.busy
        - machine_before.busy
        - (cpu_after.stat_seconds - cpu_before.stat_seconds)
        - total_sipp
        - helpers_cpu
    )
    result.other_cpu_pct = max(0.0, 100.0 * others / wall)
    if stats.successful:
        result.cpu_ms_per_call = 1e3 * result.server_cpu_s / stats.successful
    result.leftovers = {k: v for k, v in server.after_step(10.0).items() if v}
