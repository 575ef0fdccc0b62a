"""What a call benchmark runs against each target: rate steps on one server, then a latency step.

Generic over the benchmark: it gives a function that starts a fresh server
(`StartFn`), one that runs a step against it (`StepFn`) and one that turns the
latency step's SIPp logs into latency figures (`MeasureFn`). Shared with the
REGISTER benchmark: the wait for a quiet machine and the server log summary.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from bench.common.callstep import StepResult
from bench.common.procstat import Memory, system_cpu, tree_cpu, tree_memory
from bench.common.server import Server

# Other load (% of one core) above which the machine counts as busy.
BUSY_PCT = 20.0

S = TypeVar("S", bound=StepResult)
L = TypeVar("L")

StartFn = Callable[[Path], Server]
# (server, rate, seconds, label, out dir, trace_logs) -> judged step
StepFn = Callable[[Server, int, float, str, Path, bool], S]
# (rate, latency step) -> latency figures
MeasureFn = Callable[[int, S], L]


@dataclass(frozen=True)
class Schedule:
    """The steps run against every target, and the run's time budget."""

    rates: tuple[int, ...]
    step_seconds: float
    pause_seconds: float
    call_seconds: float  # how long one call lasts once answered
    latency_seconds: float  # 0 = no latency step
    latency_rate: int | None  # None = half the max clean rate
    quiet_wait: float
    deadline: float  # time.monotonic() after which no new step starts

    def fits(self, seconds: float, margin: float = 20.0) -> bool:
        """True if `seconds` more (plus `margin`) end before the deadline."""
        return time.monotonic() + seconds + margin < self.deadline


@dataclass
class TargetResult(Generic[S, L]):
    """Everything measured on one target."""

    name: str
    details: dict[str, str] = field(default_factory=dict)
    steps: list[S] = field(default_factory=list)
    idle_memory: Memory | None = None
    latency: L | None = None
    latency_step: S | None = None
    log_summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def max_clean(self) -> S | None:
        """The highest-rate clean step (the warm-up is not a rate step)."""
        clean = [step for step in self.steps if step.passed]
        return max(clean, key=lambda step: step.rate) if clean else None

    def as_json(self) -> dict[str, Any]:
        """Plain-data form for results/latest.json."""
        best = self.max_clean
        latency = self.latency
        return {
            "name": self.name,
            "details": self.details,
            "max_clean_rate": best.rate if best else None,
            "cpu_ms_per_call_at_max": best.cpu_ms_per_call if best else None,
            "idle_memory_kib": asdict(self.idle_memory) if self.idle_memory else None,
            "steps": [step.as_json() for step in self.steps],
            "latency": asdict(latency) if is_dataclass(latency) else None,  # type: ignore[arg-type]
            "latency_step": self.latency_step.as_json() if self.latency_step else None,
            "log_summary": self.log_summary,
            "notes": self.notes,
            "error": self.error,
        }


def log(message: str) -> None:
    """A timestamped progress line."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def other_load(server_pid: int, window: float = 2.0) -> float:
    """CPU used by processes other than the server over `window` s, in % of one core."""
    machine, server = system_cpu().busy, tree_cpu(server_pid).stat_seconds
    time.sleep(window)
    used = system_cpu().busy - machine - (tree_cpu(server_pid).stat_seconds - server)
    return max(0.0, 100.0 * used / window)


def await_quiet(
    server_pid: int, wait: float, label: str, keep_going: Callable[[], bool] = lambda: True
) -> str | None:
    """Before a step, wait (at most `wait` s) for a shared machine to calm down.

    Returns a note for the report when the wait was long or the machine stayed busy.
    """
    started = time.monotonic()
    load = other_load(server_pid)
    while load > BUSY_PCT and time.monotonic() - started < wait and keep_going():
        time.sleep(3.0)
        load = other_load(server_pid)
    waited = time.monotonic() - started
    if waited > 5.0 or load > BUSY_PCT:
        return (
            f"before {label}: waited {waited:.0f} s for other load to drop, "
            f"last seen {load:.0f}% of a core"
        )
    return None


def show(server: str, step: StepResult) -> None:
    """Log one step's figures and verdict."""
    verdict = "clean" if step.passed else "FAILED: " + "; ".join(step.reasons)
    log(f"{server} {step.label} {step.rate}/s: {step.describe()} -> {verdict}")
    for line in step.errors[:3]:
        log(f"    {line}")


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


def _stop(server: Server, result: TargetResult[S, L], phase: str) -> None:
    code = server.stop()
    if code not in (0, None):
        result.notes.append(
            f"{server.name}{phase} exited with code {code} on SIGTERM (see its log)"
        )


def rate_steps(
    schedule: Schedule,
    start: StartFn,
    step: StepFn[S],
    work: Path,
    result: TargetResult[S, L],
    keep_log: Path | None,
) -> None:
    """Step the offered rate up on one server until the first failing step."""
    out = work / "steps"
    out.mkdir(parents=True, exist_ok=True)
    log(f"starting {result.name}")
    server = start(out)
    try:
        result.details = server.details
        result.idle_memory = tree_memory(server.proc.pid)
        warm = step(server, min(10, schedule.rates[0]), 2, "warmup", out, False)
        show(result.name, warm)
        if not warm.passed:
            result.notes.append("warm-up failed: " + "; ".join(warm.reasons))
        for rate in schedule.rates:
            needed = schedule.step_seconds + schedule.call_seconds + schedule.pause_seconds + 15
            if not schedule.fits(needed):
                result.notes.append(f"time budget (--max-seconds) reached before {rate}/s")
                break
            time.sleep(schedule.pause_seconds)
            if schedule.quiet_wait > 0:
                note = await_quiet(server.proc.pid, schedule.quiet_wait, f"{rate}/s")
                if note:
                    result.notes.append(note)
            done = step(server, rate, schedule.step_seconds, f"r{rate}", out, False)
            show(result.name, done)
            result.steps.append(done)
            if not done.passed:
                if done.sipp_cpu_pct >= 90.0:
                    result.notes.append(
                        f"at {rate}/s the SIPp processes used {done.sipp_cpu_pct:.0f}% of their "
                        "core: the load generator may be the limit"
                    )
                break
            if done.leftovers:
                result.notes.append(f"after {rate}/s still open after 10 s: {done.leftovers}")
        else:
            result.notes.append("every offered rate was clean: the maximum is not reached")
    finally:
        _stop(server, result, "")
        result.log_summary = summarize_log(server.log_path, keep_log)


def latency_step(
    schedule: Schedule,
    start: StartFn,
    step: StepFn[S],
    measure: MeasureFn[S, L],
    work: Path,
    result: TargetResult[S, L],
) -> None:
    """A fresh server, one step at the latency rate with SIPp timestamps logged."""
    best = result.max_clean
    rate = schedule.latency_rate or max(1, (best.rate if best else schedule.rates[0]) // 2)
    out = work / "latency"
    out.mkdir(parents=True, exist_ok=True)
    log(f"latency step: fresh {result.name}, {rate}/s for {schedule.latency_seconds:g} s")
    server = start(out)
    try:
        done = step(server, rate, schedule.latency_seconds, "latency", out, True)
        show(result.name, done)
    finally:
        _stop(server, result, " (latency step)")
    result.latency_step = done
    result.latency = measure(rate, done)
    if not done.passed:
        result.notes.append("the latency step was not clean: " + "; ".join(done.reasons))


def run_target(
    result: TargetResult[S, L],
    schedule: Schedule,
    start: StartFn,
    step: StepFn[S],
    measure: MeasureFn[S, L],
    work: Path,
    keep_log: Path | None,
) -> TargetResult[S, L]:
    """Rate steps and the latency step on one target; a start-up failure is recorded, not raised."""
    try:
        rate_steps(schedule, start, step, work, result, keep_log)
        if schedule.latency_seconds > 0:
            if schedule.fits(schedule.latency_seconds + schedule.call_seconds + 30):
                latency_step(schedule, start, step, measure, work, result)
            else:
                result.notes.append("time budget reached before the latency step")
    except (RuntimeError, OSError, TimeoutError) as exc:
        log(f"{result.name}: {exc}")
        result.error = str(exc)
    return result
