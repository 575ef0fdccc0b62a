"""What runs against each target: rate steps on one server, then a latency step on a fresh one."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common.procstat import Memory, system_cpu, tree_cpu, tree_memory
from bench.dial.latency import Latency, measure
from bench.dial.steps import Criteria, StepResult, StepSpec, run_step
from bench.dial.targets import TARGETS, CalleeSpec, Server, TargetOptions, callee_specs

# Other load (% of one core) above which the machine counts as busy.
BUSY_PCT = 20.0


@dataclass(frozen=True)
class Plan:
    """What to run against every target."""

    fork: int
    rates: tuple[int, ...]
    step_seconds: float
    pause_seconds: float
    hold_ms: int
    answer_delay_ms: int
    side_cpus: str | None
    criteria: Criteria
    latency_seconds: float  # 0 = no latency step
    latency_rate: int | None  # None = half the max clean rate
    quiet_wait: float
    settle_timeout: float
    deadline: float  # time.monotonic() after which no new step starts


@dataclass
class TargetResult:
    """Everything measured on one target."""

    name: str
    details: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    idle_memory: Memory | None = None
    latency: Latency | None = None
    latency_step: StepResult | None = None
    log_summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def max_clean(self) -> StepResult | None:
        """The highest-rate clean step."""
        clean = [step for step in self.steps if step.passed]
        return max(clean, key=lambda step: step.rate) if clean else None

    def as_json(self) -> dict[str, Any]:
        """Plain-data form for results/latest.json."""
        best = self.max_clean
        return {
            "name": self.name,
            "details": self.details,
            "max_clean_rate": best.rate if best else None,
            "cpu_ms_per_call_at_max": best.cpu_ms_per_call if best else None,
            "idle_memory_kib": asdict(self.idle_memory) if self.idle_memory else None,
            "steps": [step.as_json() for step in self.steps],
            "latency": asdict(self.latency) if self.latency else None,
            "latency_step": self.latency_step.as_json() if self.latency_step else None,
            "log_summary": self.log_summary,
            "notes": self.notes,
            "error": self.error,
        }


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _fits(plan: Plan, seconds: float) -> bool:
    return time.monotonic() + seconds + 20 < plan.deadline


def _other_load(server_pid: int, window: float = 2.0) -> float:
    """CPU used by processes other than the server over `window` s, in % of one core."""
    machine, server = system_cpu().busy, tree_cpu(server_pid).stat_seconds
    time.sleep(window)
    used = system_cpu().busy - machine - (tree_cpu(server_pid).stat_seconds - server)
    return max(0.0, 100.0 * used / window)


def _await_quiet(server: Server, plan: Plan, result: TargetResult, rate: int) -> None:
    started = time.monotonic()
    load = _other_load(server.proc.pid)
    while load > BUSY_PCT and time.monotonic() - started < plan.quiet_wait:
        time.sleep(3.0)
        load = _other_load(server.proc.pid)
    waited = time.monotonic() - started
    if waited > 5.0 or load > BUSY_PCT:
        result.notes.append(
            f"before {rate}/s: waited {waited:.0f} s for other load to drop, "
            f"last seen {load:.0f}% of a core"
        )


def _show(server: str, step: StepResult) -> None:
    verdict = "clean" if step.passed else "FAILED: " + "; ".join(step.reasons)
    left = f", left open {step.leftovers}" if step.leftovers else ""
    _log(
        f"{server} {step.label} {step.rate}/s: {step.successful}/{step.calls} ok, "
        f"{step.failed} failed, callees {step.callee_successful} ok/{step.callee_failed} failed, "
        f"retrans {step.retransmissions}+{step.callee_retransmissions}, "
        f"achieved {step.achieved_rate:.0f}/s, server CPU {step.server_cpu_pct:.0f}% "
        f"({step.cpu_ms_per_call:.2f} ms/call), SIPp CPU {step.sipp_cpu_pct:.0f}%, "
        f"RSS peak {step.peak_rss_kib / 1024:.0f} MiB, idle {step.settle_s:.0f} s after{left} "
        f"-> {verdict}"
    )
    for line in step.errors[:3]:
        _log(f"    {line}")


def _event_key(record: dict[str, Any]) -> str:
    """A log record's event, with per-instance noise (task names, ids) removed for counting."""
    event = str(record.get("event", "?"))
    exception = str(record.get("exception", ""))
    if exception:
        event += " | " + exception.strip().splitlines()[-1]
    event = re.sub(r"Task-\d+", "Task-N", event.replace("\n", " "))
    return re.sub(r"\b(CA|AC)[0-9a-f]{32}\b", r"\1…", event)[:400]


def summarize_log(path: Path | None, keep: Path | None, limit: int = 2000) -> dict[str, Any]:
    """Count a server log's lines by level (and warning/error events); copy those lines to `keep`.

    dialtone logs one JSON object per line (`--log-format json`); other lines
    (Kamailio, tracebacks) are counted as `other`.
    """
    if path is None or not path.exists():
        return {}
    levels: Counter[str] = Counter()
    events: Counter[str] = Counter()
    kept: list[str] = []
    with path.open(errors="replace") as handle:
        for line in handle:
            text = line.rstrip("\n")
            if not text:
                continue
            try:
                record = json.loads(text)
            except ValueError:
                record = None
            if isinstance(record, dict):
                level = str(record.get("level", "?")).lower()
                levels[level] += 1
                if level not in ("debug", "info"):
                    events[f"{level}: {_event_key(record)}"] += 1
                    if len(kept) < limit:
                        kept.append(text)
            else:
                levels["other"] += 1
                if len(kept) < limit:
                    kept.append(text)
    if keep is not None and kept:
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text("\n".join(kept) + "\n")
    return {
        "lines_by_level": dict(levels),
        "warning_and_error_events": dict(events.most_common(30)),
        "kept": str(keep) if keep is not None and kept else None,
    }


def _start(name: str, work: Path, specs: tuple[CalleeSpec, ...], options: TargetOptions) -> Server:
    work.mkdir(parents=True, exist_ok=True)
    return TARGETS[name](work, specs, options)


def rate_steps(
    name: str,
    plan: Plan,
    options: TargetOptions,
    specs: tuple[CalleeSpec, ...],
    work: Path,
    result: TargetResult,
    keep_log: Path | None,
) -> None:
    """Step the offered rate up on one server until the first failing step."""
    out = work / "steps"
    _log(f"starting {name} ({plan.fork} callee(s))")
    server = _start(name, out, specs, options)
    spec = StepSpec(
        plan.hold_ms, plan.answer_delay_ms, plan.side_cpus, plan.criteria, plan.settle_timeout
    )
    try:
        result.details = server.details
        result.idle_memory = tree_memory(server.proc.pid)
        warm = run_step(
            server, specs, spec, rate=min(10, plan.rates[0]), seconds=2, label="warmup", out=out
        )
        _show(name, warm)
        if not warm.passed:
            result.notes.append("warm-up failed: " + "; ".join(warm.reasons))
        for rate in plan.rates:
            if not _fits(plan, plan.step_seconds + plan.hold_ms / 1000 + plan.pause_seconds + 15):
                result.notes.append(f"time budget (--max-seconds) reached before {rate}/s")
                break
            time.sleep(plan.pause_seconds)
            if plan.quiet_wait > 0:
                _await_quiet(server, plan, result, rate)
            step = run_step(
                server, specs, spec, rate=rate, seconds=plan.step_seconds, label=f"r{rate}", out=out
            )
            _show(name, step)
            result.steps.append(step)
            if not step.passed:
                if step.sipp_cpu_pct >= 90.0:
                    result.notes.append(
                        f"at {rate}/s the SIPp processes used {step.sipp_cpu_pct:.0f}% of their "
                        "core: the load generator may be the limit"
                    )
                break
            if step.leftovers:
                result.notes.append(f"after {rate}/s still open after 10 s: {step.leftovers}")
        else:
            result.notes.append("every offered rate was clean: the maximum is not reached")
    finally:
        code = server.stop()
        result.log_summary = summarize_log(server.log_path, keep_log)
        if code not in (0, None):
            result.notes.append(f"{name} exited with code {code} on SIGTERM (see its log)")


def latency_step(
    name: str,
    plan: Plan,
    options: TargetOptions,
    specs: tuple[CalleeSpec, ...],
    work: Path,
    result: TargetResult,
) -> None:
    """A fresh server, one step at the latency rate with SIPp timestamps logged."""
    best = result.max_clean
    rate = plan.latency_rate or max(1, (best.rate if best else plan.rates[0]) // 2)
    out = work / "latency"
    _log(f"latency step: fresh {name}, {rate}/s for {plan.latency_seconds:g} s")
    server = _start(name, out, specs, options)
    spec = StepSpec(
        plan.hold_ms, plan.answer_delay_ms, plan.side_cpus, plan.criteria, plan.settle_timeout
    )
    try:
        step = run_step(
            server,
            specs,
            spec,
            rate=rate,
            seconds=plan.latency_seconds,
            label="latency",
            out=out,
            trace_logs=True,
        )
        _show(name, step)
    finally:
        code = server.stop()
        if code not in (0, None):
            result.notes.append(f"{name} (latency step) exited with code {code} on SIGTERM")
    result.latency_step = step
    caller_log = Path(step.log_files.get("caller", ""))
    callee_logs = [
        Path(step.log_files[spec.login]) for spec in specs if spec.login in step.log_files
    ]
    result.latency = measure(rate, caller_log, callee_logs)
    if not step.passed:
        result.notes.append("the latency step was not clean: " + "; ".join(step.reasons))


def run_target(
    name: str, plan: Plan, options: TargetOptions, work: Path, keep_log: Path | None
) -> TargetResult:
    """Rate steps and the latency step on one target; a start-up failure is recorded, not raised."""
    result = TargetResult(name=name)
    specs = callee_specs(plan.fork)
    try:
        rate_steps(name, plan, options, specs, work / name, result, keep_log)
        if plan.latency_seconds > 0:
            if _fits(plan, plan.latency_seconds + plan.hold_ms / 1000 + 30):
                latency_step(name, plan, options, specs, work / name, result)
            else:
                result.notes.append("time budget reached before the latency step")
    except (RuntimeError, OSError, TimeoutError) as exc:
        _log(f"{name}: {exc}")
        result.error = str(exc)
    return result
