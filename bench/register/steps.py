"""One RFC 7502-style load step: offer a rate for a fixed time, judge the result.

A step passes when SIPp exits 0 within its bound, every registration
succeeded, retransmissions stay under a small share of the requests sent,
and the achieved rate is close to the offered one (a server that falls
behind throttles SIPp through its open-call cap).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common.procstat import Memory, cpu_seconds, system_cpu, tree_cpu, tree_memory
from bench.common.sipp import read_stats
from bench.register import sipp
from bench.register.sipp import SippLoad


@dataclass(frozen=True)
class Criteria:
    """What makes a step clean."""

    max_retrans_pct: float = 1.0  # of the REGISTER requests sent (2 per registration)
    min_achieved_pct: float = 95.0  # of the offered rate


@dataclass
class StepResult:
    """Figures and verdict of one step."""

    rate: int
    calls: int
    exit_code: int | None
    timed_out: bool
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    out_of_call: int = 0
    duration_s: float = 0.0
    creation_s: float = 0.0
    achieved_rate: float = 0.0
    server_cpu_s: float = 0.0
    server_cpu_stat_s: float = 0.0
    server_cpu_pct: float = 0.0
    cpu_us_per_registration: float = 0.0
    cpu_us_per_registration_stat: float = 0.0
    sipp_cpu_pct: float = 0.0
    other_cpu_pct: float = 0.0  # user+system CPU of every other process, % of one core
    steal_pct: float = 0.0
    rtd_p50: str = "n/a"
    rtd_p99: str = "n/a"
    memory: Memory | None = None
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Plain-data form for results/latest.json."""
        return asdict(self)


def judge(result: StepResult, criteria: Criteria) -> None:
    """Fill `passed` and `reasons` from the step's figures."""
    reasons: list[str] = []
    if result.timed_out:
        reasons.append("SIPp overran its time bound")
    elif result.exit_code != 0:
        reasons.append(f"SIPp exit code {result.exit_code}")
    if result.failed:
        reasons.append(f"{result.failed} failed registrations")
    if result.successful < result.calls:
        reasons.append(f"{result.calls - result.successful} registrations not completed")
    requests = 2 * result.calls
    if requests and 100.0 * result.retransmissions / requests > criteria.max_retrans_pct:
        reasons.append(f"retransmission storm ({result.retransmissions} retransmissions)")
    if result.achieved_rate < result.rate * criteria.min_achieved_pct / 100.0:
        reasons.append(f"achieved {result.achieved_rate:.0f}/s < {criteria.min_achieved_pct}%")
    result.reasons = reasons
    result.passed = not reasons


def run_step(
    load: SippLoad,
    server_pid: int,
    sipp_cpus: str | None,
    criteria: Criteria,
) -> StepResult:
    """Run `load`, sampling the server's CPU around it; return the judged result."""
    result = StepResult(rate=load.rate, calls=load.calls, exit_code=None, timed_out=False)
    cpu_before = tree_cpu(server_pid)
    machine_before = system_cpu()
    wall_before = time.monotonic()
    proc = sipp.start(load, sipp_cpus)
    result.command = proc.argv
    sipp_cpu = 0.0
    # Poll rather than block so SIPp's own CPU time is read before it is reaped.
    deadline = wall_before + load.timeout_s + 15
    while proc.alive() and time.monotonic() < deadline:
        sipp_cpu = cpu_seconds(proc.pid) or sipp_cpu
        time.sleep(0.5)
    result.exit_code, result.timed_out = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    wall = time.monotonic() - wall_before
    cpu_after = tree_cpu(server_pid)
    machine_after = system_cpu()
    result.server_cpu_s = cpu_after.seconds - cpu_before.seconds
    result.server_cpu_stat_s = cpu_after.stat_seconds - cpu_before.stat_seconds
    result.memory = tree_memory(server_pid)
    result.errors = sipp.error_summary(load)
    try:
        stats = read_stats(load.stat_path)
    except (OSError, ValueError, KeyError) as exc:
        result.reasons = [f"no SIPp statistics: {exc}"]
        return result
    result.successful = stats.successful
    result.failed = stats.failed
    result.retransmissions = stats.retransmissions
    result.out_of_call = stats.out_of_call + stats.dead_call
    result.duration_s = stats.duration_s
    result.creation_s = stats.creation_s
    result.achieved_rate = stats.achieved_rate
    result.rtd_p50 = stats.rtd_percentile(0.50)
    result.rtd_p99 = stats.rtd_percentile(0.99)
    busy = stats.duration_s if stats.duration_s > 0 else wall
    result.server_cpu_pct = 100.0 * result.server_cpu_s / busy
    result.sipp_cpu_pct = 100.0 * sipp_cpu / busy
    # Whatever else ran on the machine meanwhile (other engineers' tests on a
    # shared box): machine-wide user+system minus server and SIPp, in ticks.
    others = machine_after.busy - machine_before.busy - result.server_cpu_stat_s - sipp_cpu
    result.other_cpu_pct = max(0.0, 100.0 * others / wall)
    result.steal_pct = 100.0 * (machine_after.steal - machine_before.steal) / wall
    if stats.successful:
        result.cpu_us_per_registration = 1e6 * result.server_cpu_s / stats.successful
        result.cpu_us_per_registration_stat = 1e6 * result.server_cpu_stat_s / stats.successful
    judge(result, criteria)
    return result


def step_load(
    *,
    name: str,
    target_port: int,
    ports: tuple[int, int],
    rate: int,
    seconds: float,
    csv_path: Path,
    out_dir: Path,
    transport: str,
) -> SippLoad:
    """The SippLoad for one step: `-r rate -m rate*seconds`, bounded in time."""
    calls = max(1, int(rate * seconds))
    return SippLoad(
        target_port=target_port,
        local_port=ports[0],
        media_port=ports[1],
        rate=rate,
        calls=calls,
        csv_path=csv_path,
        out_dir=out_dir,
        name=name,
        transport=transport,
        timeout_s=int(seconds * 3 + 30),
    )
