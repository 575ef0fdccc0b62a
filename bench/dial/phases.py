"""What runs against each target: rate steps on one server, then a latency step on a fresh one.

The loop itself is bench/common/phases.py; this module binds it to the Dial
benchmark's callees, steps and latency figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.common.callstep import StepResult, StepSpec
from bench.common.phases import Schedule, TargetResult, run_target
from bench.common.server import Server
from bench.dial.latency import Latency, measure
from bench.dial.steps import DialSpec, run_step
from bench.dial.targets import TARGETS, CalleeSpec, TargetOptions, callee_specs

DialResult = TargetResult[StepResult, Latency]


@dataclass(frozen=True)
class Plan:
    """What to run against every target."""

    schedule: Schedule
    step: StepSpec
    fork: int
    hold_ms: int
    answer_delay_ms: int


def _latency(specs: tuple[CalleeSpec, ...], rate: int, step: StepResult) -> Latency:
    caller_log = Path(step.log_files.get("caller", ""))
    callee_logs = [Path(step.log_files[s.login]) for s in specs if s.login in step.log_files]
    hooks = step.log_files.get("hooks")
    return measure(rate, caller_log, callee_logs, Path(hooks) if hooks else None)


def run_dial_target(
    name: str, plan: Plan, options: TargetOptions, work: Path, keep_log: Path | None
) -> DialResult:
    """Rate steps and the latency step on one target; a start-up failure is recorded, not raised."""
    specs = callee_specs(plan.fork)
    spec = DialSpec(plan.step, plan.hold_ms, plan.answer_delay_ms)

    def start(out: Path) -> Server:
        return TARGETS[name](out, specs, options)

    def step(
        server: Server, rate: int, seconds: float, label: str, out: Path, trace: bool
    ) -> StepResult:
        return run_step(
            server, specs, spec, rate=rate, seconds=seconds, label=label, out=out, trace_logs=trace
        )

    result: DialResult = TargetResult(name=name)
    return run_target(
        result, plan.schedule, start, step, partial(_latency, specs), work / name, keep_log
    )
