"""The two phases run against each target: rate steps, then bindings RSS."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common.phases import BUSY_PCT, await_quiet, log
from bench.common.procstat import Memory, tree_memory
from bench.register.steps import Criteria, StepResult, run_step, step_load
from bench.register.targets import TARGETS, Server, TargetOptions
from bench.register.users import write_sipp_csv


@dataclass(frozen=True)
class Plan:
    """What to run against every target."""

    users: int
    rates: tuple[int, ...]
    step_seconds: float
    pause_seconds: float
    transport: str
    sipp_cpus: str | None
    criteria: Criteria
    bindings: int
    bindings_rate: int
    refine: int
    retry_busy: int  # re-runs of a failing step that other processes disturbed
    quiet_wait: float  # seconds to wait, before a step, for other load to drop
    deadline: float  # time.monotonic() after which no new step starts


@dataclass
class BindingsResult:
    """RSS of a fresh server before and after `count` registrations."""

    count: int
    rate: int
    before: Memory
    after: Memory
    step: StepResult

    @property
    def kib_per_binding(self) -> float:
        """Pss growth per binding."""
        return (self.after.pss_sum_kib - self.before.pss_sum_kib) / max(1, self.count)


@dataclass
class TargetResult:
    """Everything measured on one target."""

    name: str
    details: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    idle_memory: Memory | None = None
    bindings: BindingsResult | None = None
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
            "cpu_us_per_registration_at_max": best.cpu_us_per_registration if best else None,
            "idle_memory_kib": asdict(self.idle_memory) if self.idle_memory else None,
            "steps": [step.as_json() for step in self.steps],
            "bindings": (
                {
                    "count": self.bindings.count,
                    "rate": self.bindings.rate,
                    "before_kib": asdict(self.bindings.before),
                    "after_kib": asdict(self.bindings.after),
                    "kib_per_binding": self.bindings.kib_per_binding,
                    "step": self.bindings.step.as_json(),
                }
                if self.bindings
                else None
            ),
            "notes": self.notes,
            "error": self.error,
        }


def _one_step(
    server: Server,
    plan: Plan,
    rate: int,
    csv: Path,
    out: Path,
    *,
    seconds: float | None = None,
    label: str | None = None,
) -> StepResult:
    load = step_load(
        name=f"{server.name}-{label or f'r{rate}'}",
        target_port=server.sip_port,
        ports=server.client_ports,
        rate=rate,
        seconds=plan.step_seconds if seconds is None else seconds,
        csv_path=csv,
        out_dir=out,
        transport=plan.transport,
    )
    result = run_step(load, server.proc.pid, plan.sipp_cpus, plan.criteria)
    if not server.proc.alive():
        result.passed = False
        result.reasons.append("server exited")
    verdict = "clean" if result.passed else "FAILED: " + "; ".join(result.reasons)
    log(
        f"{server.name} {label or 'step'} {rate}/s: {result.successful}/{result.calls} ok, "
        f"{result.failed} failed, {result.retransmissions} retrans, "
        f"achieved {result.achieved_rate:.0f}/s, server CPU {result.server_cpu_pct:.0f}%, "
        f"{result.cpu_us_per_registration:.0f} us/reg, SIPp CPU {result.sipp_cpu_pct:.0f}% "
        f"-> {verdict}"
    )
    return result


def _await_quiet(server: Server, plan: Plan, result: TargetResult, rate: int) -> None:
    """Before a step, wait (at most `plan.quiet_wait` s) for a shared machine to calm down."""
    note = await_quiet(
        server.proc.pid,
        plan.quiet_wait,
        f"{rate}/s",
        keep_going=lambda: _fits(plan, plan.step_seconds + 3.0),
    )
    if note:
        result.notes.append(note)


def _fits(plan: Plan, seconds: float) -> bool:
    return time.monotonic() + seconds + 15 < plan.deadline


def _refine(
    server: Server, plan: Plan, result: TargetResult, csv: Path, out: Path, failing: int
) -> None:
    """Binary-search between the last clean rate and the first failing one."""
    best = result.max_clean
    low, high = (best.rate if best else 0), failing
    for _ in range(plan.refine):
        middle = (low + high) // 2 // 50 * 50
        if middle <= low or middle >= high or not server.proc.alive():
            return
        if not _fits(plan, plan.step_seconds + plan.pause_seconds):
            result.notes.append("time budget reached during refinement")
            return
        time.sleep(plan.pause_seconds)
        step = _one_step(server, plan, middle, csv, out)
        result.steps.append(step)
        low, high = (middle, high) if step.passed else (low, middle)


def rate_steps(name: str, plan: Plan, options: TargetOptions, work: Path) -> TargetResult:
    """Step the offered rate up until the first failing step."""
    result = TargetResult(name=name)
    out = work / "steps"
    out.mkdir(parents=True, exist_ok=True)
    csv = write_sipp_csv(out / "users.csv", plan.users)
    log(f"starting {name} with {plan.users} users")
    server = TARGETS[name](out, plan.users, options)
    try:
        result.details = server.details
        result.idle_memory = tree_memory(server.proc.pid)
        # Warm-up: one registration per user so every step updates existing bindings.
        warm_rate = min(plan.rates[0], 200)
        warm = _one_step(
            server, plan, warm_rate, csv, out, seconds=plan.users / warm_rate, label="warmup"
        )
        if not warm.passed:
            result.notes.append("warm-up failed: " + "; ".join(warm.reasons))
        failing: int | None = None
        for rate in plan.rates:
            if not _fits(plan, plan.step_seconds + plan.pause_seconds):
                result.notes.append(f"time budget (--max-seconds) reached before {rate}/s")
                break
            time.sleep(plan.pause_seconds)
            if plan.quiet_wait > 0:
                _await_quiet(server, plan, result, rate)
            step = _one_step(server, plan, rate, csv, out)
            retries = plan.retry_busy
            while not step.passed and step.other_cpu_pct > BUSY_PCT and retries > 0:
                if not _fits(plan, plan.step_seconds + plan.pause_seconds):
                    break
                result.notes.append(
                    f"{rate}/s failed while other processes used {step.other_cpu_pct:.0f}% "
                    "of a core: step repeated"
                )
                result.steps.append(step)
                retries -= 1
                time.sleep(plan.pause_seconds)
                if plan.quiet_wait > 0:
                    _await_quiet(server, plan, result, rate)
                step = _one_step(server, plan, rate, csv, out, label=f"r{rate}-retry")
            result.steps.append(step)
            if not step.passed:
                failing = rate
                if step.sipp_cpu_pct >= 90.0:
                    result.notes.append(
                        f"at {rate}/s SIPp used {step.sipp_cpu_pct:.0f}% of its core: "
                        "the load generator may be the limit"
                    )
                break
        else:
            result.notes.append("every offered rate was clean: the maximum is not reached")
        if failing is not None and plan.refine:
            _refine(server, plan, result, csv, out, failing)
        busy = [step for step in result.steps if step.other_cpu_pct > BUSY_PCT]
        if busy:
            rates = ", ".join(f"{step.rate}/s ({step.other_cpu_pct:.0f}%)" for step in busy)
            result.notes.append(f"other processes used > {BUSY_PCT:.0f}% of a core during: {rates}")
    finally:
        server.proc.stop()
    return result


def bindings_rss(name: str, plan: Plan, options: TargetOptions, work: Path) -> BindingsResult:
    """Fresh server, register `plan.bindings` users once, read its memory."""
    out = work / "bindings"
    out.mkdir(parents=True, exist_ok=True)
    csv = write_sipp_csv(out / "users.csv", plan.bindings)
    log(f"starting {name} with {plan.bindings} users for the bindings phase")
    server = TARGETS[name](out, plan.bindings, options)
    try:
        before = tree_memory(server.proc.pid)
        step = _one_step(
            server,
            plan,
            plan.bindings_rate,
            csv,
            out,
            seconds=plan.bindings / plan.bindings_rate,
            label="bindings",
        )
        time.sleep(2.0)
        after = tree_memory(server.proc.pid)
    finally:
        server.proc.stop()
    log(f"{name} bindings: Pss {before.pss_sum_kib} -> {after.pss_sum_kib} KiB")
    return BindingsResult(
        count=plan.bindings, rate=plan.bindings_rate, before=before, after=after, step=step
    )


def run_target(name: str, plan: Plan, options: TargetOptions, work: Path) -> TargetResult:
    """Both phases on one target; a start-up failure is recorded, not raised."""
    try:
        result = rate_steps(name, plan, options, work / name)
    except (RuntimeError, OSError, TimeoutError) as exc:
        log(f"{name}: {exc}")
        return TargetResult(name=name, error=str(exc))
    if plan.bindings:
        if _fits(plan, plan.bindings / plan.bindings_rate + 30):
            try:
                result.bindings = bindings_rss(name, plan, options, work / name)
            except (RuntimeError, OSError, TimeoutError) as exc:
                result.notes.append(f"bindings phase failed: {exc}")
        else:
            result.notes.append("time budget reached before the bindings phase")
    return result
