"""What runs against each target: rate steps on one server, then a latency step on a fresh one.

The loop itself is bench/common/phases.py; this module binds it to the IVR
benchmark's steps and latency figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.common.callstep import StepSpec
from bench.common.phases import Schedule, TargetResult, run_target
from bench.common.server import Server
from bench.ivr.latency import Latency, measure
from bench.ivr.steps import IvrSpec, IvrStep, run_step
from bench.ivr.targets import TARGETS, TargetOptions

IvrResult = TargetResult[IvrStep, Latency]


@dataclass(frozen=True)
class Plan:
    """What to run against every target."""

    schedule: Schedule
    step: StepSpec
    say_ms: int  # the UAS's hold behind Kamailio; dialtone's is the Say's own length


def _latency(rate: int, step: IvrStep) -> Latency:
    def log(key: str) -> Path | None:
        return Path(step.log_files[key]) if key in step.log_files else None

    return measure(rate, log("caller"), hooks=log("hooks"), uas_log=log("uas"), rtp=log("rtp"))


def run_ivr_target(
    name: str, plan: Plan, options: TargetOptions, work: Path, keep_log: Path | None
) -> IvrResult:
    """Rate steps and the latency step on one target; a start-up failure is recorded, not raised."""
    kamailio = name == "kamailio"
    spec = IvrSpec(
        base=plan.step,
        say_ms=plan.say_ms,
        uas_ports=options.uas_ports if kamailio else None,
        rtp=not kamailio,
    )

    def start(out: Path) -> Server:
        return TARGETS[name](out, options)

    def step(
        server: Server, rate: int, seconds: float, label: str, out: Path, trace: bool
    ) -> IvrStep:
        return run_step(
            server, spec, rate=rate, seconds=seconds, label=label, out=out, trace_logs=trace
        )

    result: IvrResult = TargetResult(name=name)
    return run_target(result, plan.schedule, start, step, _latency, work / name, keep_log)
